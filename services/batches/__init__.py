"""The batches service: work that can wait, answered through the providers' batch APIs at the batch discount."""
