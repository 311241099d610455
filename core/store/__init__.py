"""The run store: run directories, the metrics event schema, atomic writes, checkpoints, launching and slots."""
