"""GGUF models through llama.cpp: in process (the door), served, the build and its guard."""
