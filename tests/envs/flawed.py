"""A small environment with a newcomer's mistakes switched on by keyword arguments (`--env-arg`): a grader that
answers "yes", a tool that returns a set, a missing split. With the defaults it is sound."""

from typing import Any

from agentkd import Environment, Task, tool

TAGS = ["red", "green", "blue", "black"]


def load_environment(grader: str = "exact", tags: str = "list", splits: str = "train,test",
                     yes_from: int = 0) -> Environment:
    """`grader="yes"`: the grader returns the text "yes" for tasks numbered `yes_from` and up; `tags="set"`: the
    tool returns a set; `splits`: the splits declared (comma-separated), three tasks each."""

    @tool
    def item_tags(item: int) -> Any:
        """The tags of an item (a list of strings)."""
        found = TAGS[: item + 1]
        return set(found) if tags == "set" else found

    def is_right(answer: Any, task: Task) -> Any:
        if grader == "yes" and task.metadata["number"] >= yes_from:
            return "yes"
        return float(str(answer) == task.answer)

    def solve(task: Task) -> Any:
        yield f'Thought: count the tags.\n```python\nfinal_answer(len(item_tags({task.metadata["item"]})))\n```'

    tasks = {split: [{"id": f"{split}-{i}", "prompt": f"How many tags has item {i}?", "answer": str(i + 1),
                      "metadata": {"item": i, "number": i}} for i in range(3)] for split in splits.split(",")}
    return Environment(name="flawed", tasks=tasks, tools=[item_tags], grader=is_right, max_steps=2,
                       reference_solver=solve)
