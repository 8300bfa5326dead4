"""Tool calls written as `<tool_call>` text by a local model: read back as OpenAI tool calls, and the confidence read
from the tokens of the calls' names and arguments only."""

import json
import math

from agentkd.models.tool_text import parse_tool_reply, render_tool_reply, reply_confidence, span_logprobs
from agentkd.records import ToolCall


def tokens_of(text: str, size: int = 3, logprob: float = -0.1) -> list[tuple[str, float]]:
    return [(text[i:i + size], logprob) for i in range(0, len(text), size)]


def test_a_tool_call_reply_becomes_an_openai_message():
    text = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n</tool_call>'
    reply = parse_tool_reply(text)
    assert not reply.malformed and reply.content == "Let me look."
    (call,) = reply.calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris", "unit": "C"}
    message = reply.message()
    assert message["role"] == "assistant" and message["content"] == "Let me look."
    (sent,) = message["tool_calls"]
    assert sent["type"] == "function" and sent["id"].startswith("call_")
    assert sent["function"] == {"name": "get_weather", "arguments": '{"city":"Paris","unit":"C"}'}
    spans = [text[a:b] for a, b in reply.action_spans]
    assert spans == ['"get_weather"', '{"city": "Paris", "unit": "C"}']


def test_several_calls_an_unclosed_block_and_arguments_as_text():
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
            '<tool_call>\n{"name": "b", "arguments": "{\\"x\\": 1}"}')
    reply = parse_tool_reply(text)
    assert [c.name for c in reply.calls] == ["a", "b"] and reply.calls[1].arguments == '{"x":1}'
    assert reply.content == "" and reply.message()["content"] is None


def test_a_malformed_block_is_no_usable_action():
    reply = parse_tool_reply('<tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call>')
    assert reply.malformed and reply.calls == []
    assert reply_confidence(reply, tokens_of(reply.text)) is None
    assert parse_tool_reply("<tool_call>[1, 2]</tool_call>").malformed


def test_a_plain_reply_is_all_action():
    reply = parse_tool_reply("It is sunny in Paris.")
    assert reply.calls == [] and reply.content == "It is sunny in Paris." and reply.message()["content"] == reply.text
    assert reply.action_spans == [(0, len(reply.text))]
    assert math.isclose(reply_confidence(reply, tokens_of(reply.text, logprob=-0.2)), math.exp(-0.2))


def test_confidence_reads_only_the_name_and_arguments_tokens():
    text = 'Thinking hard.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
    reply = parse_tool_reply(text)
    start = text.index('"f"')
    tokens = [(text[:start], -5.0), (text[start:], -0.01)]  # unsure of the prose and scaffolding, sure of the call
    assert span_logprobs(tokens, reply.action_spans) == [-0.01]
    assert reply_confidence(reply, tokens) > 0.98
    assert reply_confidence(reply, None) is None


def test_rendered_replies_read_back_the_same():
    calls = [ToolCall(name="get_time", arguments='{"city": "Oslo"}', id="c1")]
    text = render_tool_reply("Checking.", calls)
    back = parse_tool_reply(text)
    assert back.content == "Checking." and [(c.name, json.loads(c.arguments)) for c in back.calls] == [
        ("get_time", {"city": "Oslo"})]
    assert render_tool_reply("  done ", None) == "done"


def test_calls_without_their_tags_are_read_too():
    # Qwen2.5 writes <tool_call> as a special token, which llama.cpp leaves out of the decoded text
    text = '{"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_time", "arguments": {"city": "Paris"}}'
    reply = parse_tool_reply(text)
    assert [c.name for c in reply.calls] == ["get_weather", "get_time"] and reply.content == ""
    assert [text[a:b] for a, b in reply.action_spans][:2] == ['"get_weather"', '{"city": "Paris"}']
    assert parse_tool_reply('{"answer": 42}').calls == []  # a JSON answer is no call
    assert parse_tool_reply('{"name": "f", "arguments": {}} and more').calls == []


def test_a_call_cut_short_is_malformed():
    cut = parse_tool_reply('{"name": "f", "arguments": {}}\n{"name": "g", "argu')
    assert cut.malformed and [c.name for c in cut.calls] == ["f"]
    assert parse_tool_reply('{"name": "send_payment", "arguments": {"to": "c0').malformed
    assert not parse_tool_reply("{not json at all").malformed


def test_calls_in_a_fenced_json_block_are_read():
    text = '```json\n{\n  "name": "search_contacts",\n  "arguments": {"name": "Bruno Novak"}\n}\n```'
    reply = parse_tool_reply(text)
    assert [(c.name, json.loads(c.arguments)) for c in reply.calls] == [("search_contacts", {"name": "Bruno Novak"})]
    assert [text[a:b] for a, b in reply.action_spans] == ['"search_contacts"', '{"name": "Bruno Novak"}']
    assert parse_tool_reply("```json\n[1, 2]\n```").calls == []
