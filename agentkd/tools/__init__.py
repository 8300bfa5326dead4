"""Agent tools: the @tool decorator and retrieval (the sandbox that runs the code is agentkd.sandbox)."""

from agentkd.tools.decorator import Tool, as_tool, tool
from agentkd.tools.retrieval import BM25Retriever, DenseRetriever, Document, Hit, Retriever, format_hits

__all__ = ["Tool", "as_tool", "tool", "BM25Retriever", "DenseRetriever", "Document", "Hit", "Retriever", "format_hits"]
