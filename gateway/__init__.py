"""The gateway: the public gRPC API in front of the mesh."""
