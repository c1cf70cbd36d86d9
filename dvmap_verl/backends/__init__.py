"""Model backends for evaluation (vLLM, OpenAI-compatible servers, transformers)."""
