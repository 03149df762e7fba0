"""Self-hosted inference: vLLM's async engine (V1) with automatic prefix caching, over gRPC.

Importing this package, its servicer or its service module does not import vLLM; the engine
does so when it starts (its own environment: `scripts/inference_venv.sh`).
"""
