"""View helpers the pages share: run pickers, cached loading, notices, image input and tiles."""
