"""Short policy names, such as `teacher`, `student-sft` or `cascade-code-n2-k2-hold`: the one grammar.

A name is a base and parts, each part at most once and in any order:

    base                  teacher | student | icd (the student with retrieved demonstrations) | sc (self-consistent
                          action generation) | cascade; `sft` is short for `student-sft`
    sft | dpo             the run's fine-tuned student (`trained`) | the one after its preference stage (`trained-dpo`)
    code|result|majority  cascade: how the candidates must agree
    confidence            cascade: one sample, taken when its action's confidence reaches the threshold
    cC                    cascade-confidence: the threshold C (`agentkd calibrate` picks it)
    nN                    sc, cascade: N candidates per step
    tT                    sc, cascade: candidates sampled at temperature T
    mM                    cascade: M candidates must agree
    online                cascade: the teacher's deferred steps join the store at once
    repteacher | reptake  cascade: a student action repeating its reply to the same state goes to the teacher |
                          is taken (default: the episode ends as stuck)
    kK                    icd, cascade with an untrained student: K demonstrations per step
    nofollow              untrained student: a reply without code is not continued from an opened code block
    hold                  untrained student: it may not end its turn before it opens a code block

A part left out takes the default of its setting (`agentkd.policies.settings`). `parse_policy_name` turns a name
into the spec it means and `policy_name` writes a spec's name; `agentkd eval`, the evaluations' default names, the
improvement rounds and the ICD benchmark all go through them. Importing this module loads pydantic only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel

from agentkd.policies.settings import (
    DEFAULT_STUDENT,
    CascadeOptions,
    ICDSettings,
    SelfConsistentOptions,
    StudentSettings,
)
from agentkd.run.layout import TRAINED, TRAINED_DPO, is_trained_student
from agentkd.specs import PolicySpec, SpecError

POLICY_CHOICES: tuple[str, ...] = ("teacher", "student", "icd", "sc", "cascade")
"""The bases of a name: the policies `agentkd eval --policy` takes."""
ALIASES = {"sft": "student-sft"}
TRAINED_MODELS = {"sft": TRAINED, "dpo": TRAINED_DPO}
"""The `-sft` / `-dpo` parts: the student model each one means."""
OPTIONS: dict[str, type[BaseModel]] = {"sc": SelfConsistentOptions, "cascade": CascadeOptions}
"""The settings of the kinds that wrap a student (what their parts set)."""
DEMO_SETTINGS = tuple(name for name in ICDSettings.model_fields if name not in StudentSettings.model_fields)
"""The settings only a student with demonstrations has."""
FULL_PROMPT_SETTINGS = ("observation_prefill", "code_followup", "code_before_end")
"""Student settings that act on the full CodeAct prompt only (a fine-tuned student has the short one)."""


class PolicyNameError(SpecError):
    """A policy name that does not follow the grammar (the message says which part and what is allowed)."""


@dataclass(frozen=True)
class Part:
    """One kind of part: its pattern, the setting it sets and to what, and how a setting's value is written."""

    pattern: str
    setting: str
    value: Callable[[re.Match[str]], Any]
    write: Callable[[Any], str]
    of: str
    """"options": the sc / cascade settings; "student": the settings of the student; "trained": the student model."""


PARTS = (
    Part(r"sft|dpo", "trained", lambda m: m[0], str, "trained"),
    Part(r"code|result|majority|confidence", "agreement", lambda m: m[0], str, "options"),
    Part(r"n(\d+)", "samples", lambda m: int(m[1]), lambda v: f"n{v}", "options"),
    Part(r"t(\d+(?:\.\d+)?)", "temperature", lambda m: float(m[1]), lambda v: f"t{v:g}", "options"),
    Part(r"m(\d+)", "min_agree", lambda m: int(m[1]), lambda v: f"m{v}", "options"),
    Part(r"online", "online", lambda m: True, lambda v: "online", "options"),
    Part(r"rep(teacher|take)", "on_repeat", lambda m: m[1], lambda v: f"rep{v}", "options"),
    Part(r"c(\d+(?:\.\d+)?)", "threshold", lambda m: float(m[1]), lambda v: f"c{v:g}", "options"),
    Part(r"k(\d+)", "k", lambda m: int(m[1]), lambda v: f"k{v}", "student"),
    Part(r"nofollow", "code_followup", lambda m: False, lambda v: "nofollow", "student"),
    Part(r"hold", "code_before_end", lambda m: True, lambda v: "hold", "student"),
)
"""Every part, in the order `policy_name` writes them."""

GRAMMAR = (f"a name is a base ({', '.join(POLICY_CHOICES)}; sft = student-sft) followed by parts, each at most "
           "once: sft | dpo (the run's fine-tuned student), code | result | majority | confidence (cascade agreement), "
           "nN (sc, cascade: N samples), tT (sc, cascade: temperature T), mM (cascade: M samples must agree), online "
           "(cascade), repteacher | reptake (cascade: a repeated student action goes to the teacher | is taken), cC (cascade-confidence: threshold C), kK (icd, cascade: K demonstrations), nofollow, hold (untrained student); e.g. "
           "cascade-code-n2-k2-hold")


@dataclass
class PolicyName:
    """A name read into its parts: the base and the settings it sets."""

    base: str
    trained: str | None = None
    """"sft" or "dpo": the run's fine-tuned student; None: the student given."""
    options: dict[str, Any] = field(default_factory=dict)
    """Settings of the sc / cascade kind."""
    student: dict[str, Any] = field(default_factory=dict)
    """Settings of the student."""

    def has_demos(self) -> bool:
        """Whether its student is given retrieved demonstrations (icd, and a cascade of an untrained student)."""
        return self.base == "icd" or (self.base == "cascade" and self.trained is None)

    def applies(self, part: Part) -> bool:
        """Whether `part` means anything for this base (read from the kinds' settings models)."""
        if self.base == "teacher":
            return False
        if part.of == "trained":
            return True
        if part.of == "options":
            return part.setting in OPTIONS.get(self.base, BaseModel).model_fields
        if self.trained and part.setting in FULL_PROMPT_SETTINGS:
            return False
        return part.setting in (ICDSettings if self.has_demos() else StudentSettings).model_fields

    def text(self) -> str:
        """The name, its parts in the canonical order."""
        words = [self.base]
        for part in PARTS:
            value = (self.trained if part.of == "trained" else getattr(self, part.of).get(part.setting))
            if value is not None:
                words.append(part.write(value))
        return "-".join(words)


def read_policy_name(name: str) -> PolicyName:
    """`name` read into its base and parts; PolicyNameError naming the part that does not fit and what is allowed."""
    words = ALIASES.get(name, name).split("-")
    if words[0] not in POLICY_CHOICES:
        raise PolicyNameError(f"unknown policy {name!r}: it must start with one of {', '.join(POLICY_CHOICES)}; "
                              f"{GRAMMAR}")
    parsed = PolicyName(words[0])
    seen: set[str] = set()
    for word in words[1:]:
        match = next(((p, m) for p in PARTS if (m := re.fullmatch(p.pattern, word))), None)
        if match is None:
            raise PolicyNameError(f"unknown policy {name!r}: {word!r} is not a part of a policy name; {GRAMMAR}")
        part, found = match
        if part.setting in seen:
            raise PolicyNameError(f"unknown policy {name!r}: it sets {part.setting} twice")
        seen.add(part.setting)
        if part.of == "trained":
            parsed.trained = found[0]
        else:
            getattr(parsed, part.of)[part.setting] = part.value(found)
    if "threshold" in seen and parsed.options.get("agreement") != "confidence":
        raise PolicyNameError(f"unknown policy {name!r}: a threshold part (cC) needs the confidence part; {GRAMMAR}")
    for part in PARTS:  # checked once every part is read: whether a student is fine-tuned changes what applies
        if part.setting in seen and not parsed.applies(part):
            why = ""
            if part.setting in DEMO_SETTINGS and parsed.base != "teacher":
                why = " (a fine-tuned student is given no demonstrations)" if parsed.trained else " (no demonstrations)"
            elif part.setting in FULL_PROMPT_SETTINGS and parsed.trained:
                why = " (a fine-tuned student has the short prompt)"
            raise PolicyNameError(f"unknown policy {name!r}: its {part.setting} part does not apply to "
                                  f"{parsed.base}{'-' + parsed.trained if parsed.trained else ''}{why}; {GRAMMAR}")
    return parsed


def parse_policy_name(name: str, teacher: PolicySpec, student: str = DEFAULT_STUDENT, **settings: Any) -> PolicySpec:
    """The spec a policy name means, every default filled in.

    `teacher`: the spec `teacher` (and a cascade's teacher) means. `student`: the student model, unless the name
    says `-sft` / `-dpo`. `settings`: defaults the name's parts override: the sc / cascade settings (samples,
    temperature, agreement, min_agree, online; those a kind lacks are left out) and the student's (max_tokens,
    api_base, history_steps, k, ...; k and goal_weight only reach a student with demonstrations)."""
    from agentkd.policies.registry import student_spec, validate_policy_spec

    parsed = read_policy_name(name)
    if parsed.base == "teacher":
        return teacher
    model = TRAINED_MODELS[parsed.trained] if parsed.trained else student
    given = {k: v for k, v in settings.items() if k not in CascadeOptions.model_fields}
    if not parsed.has_demos():
        given = {k: v for k, v in given.items() if k not in DEMO_SETTINGS}
    student_settings = {**given, **parsed.student}
    if parsed.base == "icd":  # an icd student even when it is fine-tuned: the name asked for demonstrations
        return validate_policy_spec(PolicySpec(kind="icd", settings={"model": model, **student_settings}))
    part = student_spec(model, demos=parsed.has_demos(), **student_settings)
    if parsed.base == "student":
        return part
    kind = OPTIONS[parsed.base].model_fields
    options = {**{k: v for k, v in settings.items() if k in kind}, **parsed.options}
    parts = {"student": part, **({"teacher": teacher} if parsed.base == "cascade" else {})}
    return validate_policy_spec(PolicySpec(kind=parsed.base, settings={**parts, **options}))


def policy_name(spec: PolicySpec, detail: bool = True) -> str:
    """The name of `spec`, the inverse of `parse_policy_name`: parts only for settings that differ from their
    defaults; a kind other than student, icd, sc and cascade is the teacher. `detail=False`: the base and `-sft` /
    `-dpo` only (an evaluation's default name). PolicyNameError for an sc or cascade no name describes."""
    if spec.kind in ("student", "icd"):
        base, options, student = spec.kind, {}, spec.settings
    elif spec.kind in OPTIONS:
        base, options = spec.kind, spec.settings
        inner = PolicySpec.model_validate(spec.settings.get("student", {}))
        student = inner.settings
    else:  # the teacher is whatever policy it is given (`parse_policy_name`'s `teacher`)
        return "teacher"
    model = str(student.get("model", DEFAULT_STUDENT))
    trained = "dpo" if model == TRAINED_DPO else "sft" if is_trained_student(model) else None
    parsed = PolicyName(base, trained)
    if not detail:
        return parsed.text()
    if base in OPTIONS and inner.kind != ("icd" if parsed.has_demos() else "student"):
        raise PolicyNameError(f"no policy name describes a {base} of a {inner.kind!r} student with model {model!r}")
    for part in PARTS:
        if part.of == "trained" or not parsed.applies(part):
            continue
        values = options if part.of == "options" else student
        model_fields = OPTIONS[base].model_fields if part.of == "options" else ICDSettings.model_fields
        value = values.get(part.setting, model_fields[part.setting].default)
        if value != model_fields[part.setting].default:
            getattr(parsed, part.of)[part.setting] = value
    return parsed.text()
