"""Using models: device and precision, batched prediction, image decoding, preprocessing, saliency, latency."""
