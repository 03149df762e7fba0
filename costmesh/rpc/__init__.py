"""gRPC plumbing shared by every service: the bootstrap, channels, the status table."""
