from agentkd import parse_action


def test_thought_and_single_block():
    p = parse_action("Thought: look it up\n```python\nprint(search('x'))\n```\n")
    assert p.error is None
    assert p.thought == "look it up"
    assert p.code == "print(search('x'))"


def test_py_fence_and_bare_fence_are_accepted():
    assert parse_action("```py\nx = 1\n```").code == "x = 1"
    assert parse_action("Thought: t\n```\nx = 2\n```").code == "x = 2"


def test_no_code_block_gives_corrective_error():
    p = parse_action("Thought: I think the answer is 42.")
    assert p.code is None
    assert "no Python code block" in p.error
    assert p.thought == "I think the answer is 42."


def test_several_blocks_are_rejected_with_count():
    p = parse_action("```python\na=1\n```\ntext\n```python\nb=2\n```")
    assert p.code is None
    assert "2 code blocks" in p.error


def test_unterminated_fence():
    p = parse_action("Thought: go\n```python\nprint(1)\n")
    assert p.code is None
    assert "not closed" in p.error


def test_empty_block():
    p = parse_action("```python\n\n```")
    assert p.code is None and "empty" in p.error


def test_trailing_text_after_block_is_ignored():
    p = parse_action("Thought: a\n```python\nprint(1)\n```\nObservation: 1 (hallucinated)")
    assert p.code == "print(1)" and p.error is None


def test_a_bare_final_answer_line_is_taken_as_the_code():
    from agentkd import parse_action

    assert parse_action('final_answer("1774")').code == 'final_answer("1774")'
    parsed = parse_action('Thought: it is 1774.\nfinal_answer("1774")')
    assert parsed.code == 'final_answer("1774")' and parsed.thought == "it is 1774." and parsed.error is None
    for text in ("The answer is final_answer(1774", "final_answer(1) and more", "print(1)", "```\nfinal_answer(1)"):
        assert parse_action(text).code is None, text
