"""iris.data on conversations as users have them: ShareGPT rows, system messages,
multi-turn prompts (first or last turn), a JSON file cut off inside a record, length
limits, and ``pkg:`` sources."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from iris.config import DataConfig
from iris.data import (
    SHAREGPT_ROLES,
    DataError,
    build_selfplay_records,
    conversation_turn,
    format_completion,
    format_prompts,
    load_annotated,
    prepare_data,
    prompt_id,
    sharegpt_messages,
)
from iris.packages import PackageFileError, resolve
from iris.tiny_models import make_word_tokenizer


def turn(speaker, text):
    return {"from": speaker, "value": text}


def sharegpt(i, *turns):
    return {"id": f"c{i}", "conversations": list(turns)}


SYSTEM_ROW = sharegpt(
    0,
    turn("system", "be brief"),
    turn("human", "q0"),
    turn("gpt", "a0"),
    turn("human", "q1"),
    turn("chatgpt", "a1"),
)


def messages(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def test_sharegpt_roles_are_mapped_and_unknown_ones_refused():
    assert sharegpt_messages([turn("Human", "x"), turn("bard", "y")], "r") == messages(
        ("user", "x"), ("assistant", "y")
    )
    assert {SHAREGPT_ROLES[k] for k in ("human", "user", "gpt", "chatgpt", "bing", "bard")} == {
        "user",
        "assistant",
    }
    with pytest.raises(
        DataError, match=r"^r: field 'conversations' item 1 has an unknown speaker 'robot'"
    ):
        sharegpt_messages([turn("human", "x"), turn("robot", "y")], "r")
    with pytest.raises(DataError, match=r"item 0 'value' must be a string, got int"):
        sharegpt_messages([{"from": "human", "value": 3}], "r")


def test_first_and_last_turn_keep_the_system_message_and_earlier_turns():
    conversation = sharegpt_messages(SYSTEM_ROW["conversations"], "r")
    prompt, real = conversation_turn(conversation, "r", turn="first")
    assert (prompt, real) == (messages(("system", "be brief"), ("user", "q0")), "a0")
    prompt, real = conversation_turn(conversation, "r", turn="last")
    assert real == "a1"
    assert prompt == messages(
        ("system", "be brief"), ("user", "q0"), ("assistant", "a0"), ("user", "q1")
    )


def test_a_lone_user_prompt_is_its_string_and_keeps_its_id():
    prompt, real = conversation_turn(messages(("user", "q"), ("assistant", "a")), "r")
    assert (prompt, real) == ("q", "a")
    assert prompt_id(messages(("user", " q "))) == prompt_id("q")
    assert prompt_id(messages(("system", "s"), ("user", "q"))) != prompt_id("q")


def test_leading_answers_are_dropped_and_empty_turns_refused():
    # A conversation cut out of a longer one starts with an answer to a missing question.
    cut = messages(("assistant", "tail"), ("user", "q"), ("assistant", "a"))
    assert conversation_turn(cut, "r", turn="last") == ("q", "a")
    with pytest.raises(DataError, match=r"^r: field 'messages' item 1 'content' is empty"):
        conversation_turn(messages(("user", "q"), ("assistant", " ")), "r")
    with pytest.raises(DataError, match=r"needs a user and an assistant message, got 0"):
        conversation_turn([], "r")
    with pytest.raises(DataError, match=r"item 0 has role 'tool'; roles are 'system'"):
        conversation_turn(messages(("tool", "x"), ("user", "q"), ("assistant", "a")), "r")


def test_sharegpt_file_with_skip_invalid_counts_what_it_skips(tmp_path):
    rows = [
        SYSTEM_ROW,
        sharegpt(1, turn("human", "q"), turn("gpt", "a")),
        sharegpt(2),  # empty
        sharegpt(3, turn("gpt", "only an answer")),
        sharegpt(4, turn("human", "q4"), turn("wizard", "a4")),
    ]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=rf"^{path} row 3: field 'conversations' needs a user"):
        load_annotated(path)
    loaded = load_annotated(path, skip_invalid=True, turn="last")
    assert loaded.n_invalid == 3 and loaded.layouts == {"sharegpt": 2}
    assert [r["real"] for r in loaded.records] == ["a1", "a"]
    assert loaded.records[0]["prompt"][0] == {"role": "system", "content": "be brief"}


def test_a_json_file_cut_inside_a_record_says_so_and_keeps_its_whole_records(tmp_path):
    rows = [sharegpt(i, turn("human", f"q{i}"), turn("gpt", f"a{i}")) for i in range(5)]
    text = json.dumps(rows, indent=1)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"q4"') + 2])  # inside the string of record 5
    with pytest.raises(DataError) as err:
        load_annotated(path)
    assert "the file is cut off inside record 5 (4 whole records precede the cut)" in str(err.value)
    assert "data.skip_invalid: true" in str(err.value)
    loaded = load_annotated(path, skip_invalid=True)
    assert len(loaded.records) == 4 and loaded.stats()["cut_off"]["whole_records"] == 4
    assert loaded.stats()["cut_off"]["line"] == text[: text.index('"q4"')].count("\n") - 4
    # Cut between two records, after a comma: the same diagnosis.
    path.write_text(text[: text.index("{", text.index('"a3"'))])
    assert len(load_annotated(path, skip_invalid=True).records) == 4
    # A malformed record in the middle is not a cut.
    path.write_text(text.replace('"q2"', "q2"))
    with pytest.raises(DataError, match="invalid JSON"):
        load_annotated(path, skip_invalid=True)


def test_length_limits_skip_and_count(tmp_path):
    rows = [
        {"prompt": "short", "real": "ok"},
        {"prompt": "x" * 50, "real": "ok"},
        {"prompt": "fine", "real": "y" * 50},
        {"prompt": "also fine", "real": "ok"},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = prepare_data(
        DataConfig(source=str(path), n_train=2, max_prompt_chars=20, max_response_chars=20)
    )
    assert split.stats["n_too_long"] == 2
    assert sorted(r["prompt"] for r in split.train) == ["also fine", "short"]


def test_multi_turn_prompts_render_through_the_chat_template():
    tokenizer = make_word_tokenizer([f"w{i}" for i in range(10)])
    prompt = messages(("system", "w1"), ("user", "w2"), ("assistant", "w3"), ("user", "w4"))
    text = format_prompts(tokenizer, [prompt])[0]
    rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert text in rendered and text.endswith(rendered[-20:])
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": "w5"}], tokenize=False
    )
    assert full.startswith(text + format_completion(tokenizer, prompt, "w5"))
    record = {"id": prompt_id(prompt), "prompt": prompt, "real": "w5"}
    row = build_selfplay_records(
        [record], {record["id"]: {"prompt": text, "text": "w6", "truncated": True}}, tokenizer
    )[0]
    assert row["prompt"] == text and row["generated_truncated"] is True


def test_pkg_paths_resolve_through_the_installed_distribution():
    dist = importlib.metadata.distribution("pytest")
    inner = next(str(f) for f in dist.files if str(f).endswith("__init__.py"))
    assert resolve(f"pkg:pytest/{inner}") == str(dist.locate_file(inner))
    assert resolve("relative/data.jsonl") == "relative/data.jsonl"
    with pytest.raises(PackageFileError, match=r"'no-such-dist' is not installed \(pip install"):
        resolve("pkg:no-such-dist/x.json")
    with pytest.raises(PackageFileError, match=r"pytest has no file 'nothing\.py'; it holds"):
        resolve("pkg:pytest/nothing.py")
    with pytest.raises(PackageFileError, match="expected pkg:<distribution>/<path"):
        resolve("pkg:pytest")
