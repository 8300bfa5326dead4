"""Hugging Face models in process (transformers), with a prefix cache."""
