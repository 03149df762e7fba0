"""Provider adapters (Anthropic, OpenAI, vLLM) behind one interface, served as ProviderService."""
