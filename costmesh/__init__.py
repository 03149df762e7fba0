"""costmesh: a gRPC mesh that cuts what LLM calls cost."""
