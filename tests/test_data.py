"""iris.data: loading and validation, conversation turns, nested subsets, the chat format."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import datasets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import processors

from iris import data as iris_data
from iris.config import DataConfig
from iris.data import (
    DataError,
    build_selfplay_records,
    conversation_turn,
    detect_layout,
    encode_prompts,
    format_completion,
    format_prompt,
    given_synthetic,
    load_annotated,
    prepare_data,
    prompt_id,
    prompt_messages,
    read_records,
    select_subsets,
    turn_format,
    write_records,
)
from iris.tiny_models import make_word_tokenizer

WORDS = [f"w{i}" for i in range(30)]


def nested_subsets(records, sizes, *, seed=0):
    """``{n: the training set select_subsets draws for n_train=n}`` for each size."""
    return {n: select_subsets(records, n_train=n, seed=seed).train for n in set(sizes)}


ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def ultrachat_row(i, *, turns=2):
    prompt = f"question {i} about w{i % 30}"
    messages = []
    for t in range(turns):
        messages.append({"role": "user", "content": prompt if t == 0 else f"follow-up {t}"})
        messages.append({"role": "assistant", "content": f"answer {i}.{t}"})
    return {"prompt": prompt, "prompt_id": f"pid{i}", "messages": messages}


ROWS = [ultrachat_row(i, turns=1 + i % 3) for i in range(40)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tokenizer():
    return make_word_tokenizer(WORDS)


# ---- loading ---------------------------------------------------------------------------


def test_first_turn_extraction_from_jsonl(tmp_path):
    loaded = load_annotated(write_jsonl(tmp_path / "data.jsonl", ROWS))
    assert len(loaded.records) == 40 and loaded.n_rows == 40 and loaded.n_duplicates == 0
    record = loaded.records[5]
    assert record == {
        "id": prompt_id("question 5 about w5"),
        "prompt": "question 5 about w5",
        "real": "answer 5.0",
        "source_index": 5,
    }
    assert loaded.stats()["n_unique"] == 40


def test_local_formats_agree(tmp_path):
    expected = load_annotated(write_jsonl(tmp_path / "data.jsonl", ROWS)).records
    (tmp_path / "data.json").write_text(json.dumps(ROWS))
    dataset = datasets.Dataset.from_list(ROWS)
    dataset.to_parquet(str(tmp_path / "data.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train_sft": dataset}).save_to_disk(str(tmp_path / "saved_dict"))
    arrow_file = next((tmp_path / "saved").glob("*.arrow"))
    for source in ("data.json", "data.parquet", "saved", "saved_dict", arrow_file):
        assert load_annotated(tmp_path / source).records == expected, source


def test_pair_rows_are_accepted(tmp_path):
    rows = [{"prompt": "p1", "real": "r1"}, {"prompt": "p2", "response": "r2"}]
    records = load_annotated(write_jsonl(tmp_path / "pairs.jsonl", rows)).records
    assert [(r["prompt"], r["real"]) for r in records] == [("p1", "r1"), ("p2", "r2")]


@pytest.mark.parametrize(
    ("bad_row", "pattern"),
    [
        ({"messages": "hi"}, r"data\.jsonl line 18: field 'messages' must be a list"),
        (
            {"messages": [{"role": "user", "content": "x"}]},
            r"line 18: field 'messages' needs a user and an assistant",
        ),
        (
            {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]},
            r"line 18: field 'messages' needs a user and an assistant message, got 2 message\(s\) "
            r"with roles \['assistant', 'user'\]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "  "},
                ]
            },
            r"line 18: field 'messages' item 1 'content' is empty",
        ),
        ({"prompt": "x", "real": 3}, r"line 18: field 'real' must be a string"),
        ({"text": "x"}, r"line 18: needs field 'messages' .* found fields \['text'\]"),
    ],
)
def test_schema_errors_name_file_row_and_field(tmp_path, bad_row, pattern):
    rows = [*ROWS[:17], bad_row, *ROWS[17:]]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(ValueError, match=pattern):
        load_annotated(path)
    skipped = load_annotated(path, skip_invalid=True)
    assert skipped.n_invalid == 1 and len(skipped.records) == 40


def test_invalid_json_and_missing_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"data\.jsonl line 2: invalid JSON"):
        load_annotated(path)
    with pytest.raises(FileNotFoundError):
        load_annotated(tmp_path / "nope.jsonl")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_annotated(tmp_path / "data.csv")


def test_duplicate_prompts_are_dropped(tmp_path):
    rows = [*ROWS[:5], {"prompt": "  question 3   about w3 ", "real": "other answer"}]
    loaded = load_annotated(write_jsonl(tmp_path / "d.jsonl", rows))
    assert len(loaded.records) == 5 and loaded.n_duplicates == 1
    assert loaded.records[3]["real"] == "answer 3.0"  # first occurrence kept


def test_repeated_prompts_keep_every_row(tmp_path):
    """The testbed's data: many annotated responses per prompt, each its own record."""
    rows = [{"prompt": "p0", "real": f"s{i % 3}"} for i in range(6)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    loaded = load_annotated(path, repeated_prompts=True)
    assert len(loaded.records) == 6 and loaded.n_duplicates == 0
    assert len({r["id"] for r in loaded.records}) == 6
    assert len(load_annotated(path).records) == 1
    with pytest.raises(ValueError, match="n_heldout must be 0"):
        DataConfig(source=str(path), repeated_prompts=True, n_heldout=2)


def test_hub_source_calls_load_dataset_with_pinned_revision(monkeypatch):
    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_annotated("HuggingFaceH4/ultrachat_200k", split="train_sft", revision="abc123")
    assert calls == [("HuggingFaceH4/ultrachat_200k", {"split": "train_sft", "revision": "abc123"})]
    assert loaded.label == "HuggingFaceH4/ultrachat_200k@abc123[train_sft]"
    assert len(loaded.records) == 40 and loaded.records[0]["real"] == "answer 0.0"

    # test_sft here holds the same prompts as train_sft: none of them may be held out.
    with pytest.raises(
        ValueError, match="only 0 held-out prompts are not among the training prompts"
    ):
        prepare_data(
            DataConfig(
                source="HuggingFaceH4/ultrachat_200k",
                revision="abc123",
                n_train=10,
                n_heldout=5,
                heldout_split="test_sft",
            )
        )
    assert [c[1]["split"] for c in calls[1:]] == ["train_sft", "test_sft"]


def test_hub_heldout_split_excludes_training_prompts(monkeypatch):
    test_rows = [*ROWS[:10], *(ultrachat_row(i) for i in range(100, 110))]

    def fake_load_dataset(path, *, split, revision):
        return datasets.Dataset.from_list(ROWS if split == "train_sft" else test_rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    split = prepare_data(
        DataConfig(
            source="org/data", revision="r", n_train=20, n_heldout=8, heldout_split="test_sft"
        )
    )
    pool = {prompt_id(r["prompt"]) for r in ROWS}
    assert len(split.heldout) == 8 and not pool & {r["id"] for r in split.heldout}
    with pytest.raises(ValueError, match="only 10 held-out prompts"):
        prepare_data(
            DataConfig(
                source="org/data", revision="r", n_train=20, n_heldout=11, heldout_split="test_sft"
            )
        )


# ---- subsets ---------------------------------------------------------------------------


def records_from(prompts):
    return [
        {"id": prompt_id(p), "prompt": p, "real": "r", "source_index": i}
        for i, p in enumerate(prompts)
    ]


@st.composite
def pools_and_sizes(draw):
    prompts = draw(
        st.lists(st.text(alphabet="abcde ", min_size=1, max_size=6), min_size=1, max_size=60)
    )
    records = records_from(prompts)
    n_unique = len({r["id"] for r in records})
    sizes = draw(st.lists(st.integers(1, n_unique), min_size=1, max_size=5))
    return records, sizes, draw(st.integers(0, 2**32))


@settings(deadline=None, max_examples=60)
@given(pools_and_sizes(), st.randoms(use_true_random=False))
def test_subsets_are_nested_deterministic_and_order_free(case, rng):
    records, sizes, seed = case
    subsets = nested_subsets(records, sizes, seed=seed)
    ordered = sorted(subsets)
    for small, large in itertools.pairwise(ordered):
        assert subsets[large][:small] == subsets[small]
    for n, subset in subsets.items():
        assert len(subset) == n and len({r["id"] for r in subset}) == n
    shuffled = list(records)
    rng.shuffle(shuffled)
    again = nested_subsets(shuffled, sizes, seed=seed)
    assert {n: [r["id"] for r in s] for n, s in again.items()} == {
        n: [r["id"] for r in s] for n, s in subsets.items()
    }


@settings(deadline=None, max_examples=60)
@given(pools_and_sizes(), st.floats(0, 1))
def test_heldout_never_overlaps_training(case, heldout_fraction):
    records, sizes, seed = case
    n_unique = len({r["id"] for r in records})
    n_train = min(sizes)
    n_heldout = int(heldout_fraction * (n_unique - n_train))
    split = select_subsets(records, n_train=n_train, n_heldout=n_heldout, seed=seed)
    train_ids = {r["id"] for r in split.train}
    heldout_ids = {r["id"] for r in split.heldout}
    assert len(train_ids) == n_train and len(heldout_ids) == n_heldout
    assert not train_ids & heldout_ids
    # growing the training set never moves a prompt out of it, nor into the held-out set
    bigger = select_subsets(records, n_train=n_unique - n_heldout, n_heldout=n_heldout, seed=seed)
    assert train_ids <= {r["id"] for r in bigger.train}
    assert heldout_ids == {r["id"] for r in bigger.heldout}
    with pytest.raises(ValueError, match="unique prompts"):
        select_subsets(records, n_train=n_train, n_heldout=n_unique - n_train + 1, seed=seed)


def test_paper_protocol_subsets_are_nested():
    records = records_from([f"prompt number {i}" for i in range(2_000)])
    sizes = [140, 260, 500, 1000, 2000]  # 14k ⊂ 26k ⊂ 50k ⊂ 100k ⊂ 200k, scaled down
    subsets = nested_subsets(records, sizes, seed=3)
    for small, large in itertools.pairwise(sizes):
        assert {r["id"] for r in subsets[small]} < {r["id"] for r in subsets[large]}
    assert nested_subsets(records, [500], seed=4)[500] != subsets[500]  # the seed matters
    random.Random(0).shuffle(records)
    assert nested_subsets(records, [500], seed=3)[500] == subsets[500]


def test_n_train_none_takes_everything_but_heldout():
    records = records_from([f"p{i}" for i in range(30)])
    split = select_subsets(records, n_train=None, n_heldout=4, seed=0)
    assert len(split.train) == 26 and len(split.heldout) == 4
    assert split.stats["n_pool"] == 30


def test_records_round_trip(tmp_path):
    records = records_from(["a", "b"])
    write_records(tmp_path / "train.jsonl", records)
    assert read_records(tmp_path / "train.jsonl") == records


# ---- chat format -----------------------------------------------------------------------


def test_prompt_and_completion_format(tokenizer):
    assert format_prompt(tokenizer, "w1 w2") == "<|user|> w1 w2 <|assistant|> "
    assert turn_format(tokenizer).end == " <eos>"
    assert format_completion(tokenizer, "w1 w2", "w3 w4") == "w3 w4 <eos>"
    assert format_completion(tokenizer, "w1 w2", "w3 w4", terminated=False) == "w3 w4"
    # prompt + completion is exactly the chat template's rendering, up to the end-of-turn token
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3 w4"}],
        tokenize=False,
    )
    assert full.startswith(
        format_prompt(tokenizer, "w1 w2") + format_completion(tokenizer, "w1 w2", "w3 w4")
    )


def test_zephyr_style_template(tokenizer):
    tokenizer.chat_template = ZEPHYR_TEMPLATE
    assert format_prompt(tokenizer, "w1") == "<|user|>\nw1<eos>\n<|assistant|>\n"
    assert (
        format_completion(tokenizer, "w1", "w2 w3") == "w2 w3<eos>"
    )  # the trailing newline is dropped
    assert format_completion(tokenizer, "w1", "w2 w3", terminated=False) == "w2 w3"


def test_bos_is_not_doubled(tokenizer):
    # A Llama-style tokenizer adds <bos> when encoding, and its template writes it too.
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)]
    )
    tokenizer.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    formatted = format_prompt(tokenizer, "w1")
    assert not formatted.startswith("<bos>")
    (ids,) = encode_prompts(tokenizer, [formatted])
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id


def test_missing_chat_template(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        format_prompt(tokenizer, "w1")


def test_build_selfplay_records(tokenizer):
    records = records_from(["w1 w2", "w3"])
    for record, real in zip(records, ["w5", "w6 w7"], strict=True):
        record["real"] = real
    prompts = {r["id"]: format_prompt(tokenizer, r["prompt"]) for r in records}
    generated = {
        records[0]["id"]: {"prompt": prompts[records[0]["id"]], "text": "w8", "truncated": False},
        records[1]["id"]: {
            "prompt": prompts[records[1]["id"]],
            "text": "w9 w9 w9",
            "truncated": True,
        },
    }
    proto = {
        r["id"]: {"prompt": prompts[r["id"]], "text": "w10", "truncated": False} for r in records
    }
    rows = build_selfplay_records(records, generated, tokenizer, proto=proto, tag="iter_0")
    assert rows[0] == {
        "id": records[0]["id"],
        "prompt": "<|user|> w1 w2 <|assistant|> ",
        "real": "w5 <eos>",
        "generated": "w8 <eos>",
        "generated_truncated": False,
        "proto": "w10 <eos>",
        "proto_truncated": False,
        "generated_by": "iter_0",
    }
    assert rows[1]["generated"] == "w9 w9 w9" and rows[1]["generated_truncated"] is True
    assert "proto" not in build_selfplay_records(records, generated, tokenizer)[0]

    drifted = dict(generated)
    drifted[records[0]["id"]] = {**generated[records[0]["id"]], "prompt": "w1 w2"}
    with pytest.raises(ValueError, match="generated from the prompt"):
        build_selfplay_records(records, drifted, tokenizer)
    with pytest.raises(ValueError, match="1 record"):
        build_selfplay_records(records, {records[0]["id"]: generated[records[0]["id"]]}, tokenizer)


def test_first_turn_direct():
    assert conversation_turn(ROWS[3]["messages"], "x") == ("question 3 about w3", "answer 3.0")
    with pytest.raises(ValueError, match=r"^where: field 'messages'"):
        conversation_turn([], "where")


def test_module_docstring_present():
    assert iris_data.__doc__ and "nested" in iris_data.__doc__


def test_data_errors_name_the_file_and_its_line(tmp_path):
    """Every data error names the file and a 1-based line; the CLI prints it as one line."""
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        (json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1])[:-2] + ' caf\xe9"}\n').encode("latin-1")
    )
    with pytest.raises(DataError, match=r"latin1\.jsonl line 2: not UTF-8 text \(byte b'\\xe9'\)"):
        load_annotated(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no rows"):
        load_annotated(empty)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"prompt": "a", "real": "b"},\n  {"prompt": \n]')
    with pytest.raises(DataError, match=r"broken\.json line 4: invalid JSON"):
        load_annotated(broken)
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([ROWS[0], {"prompt": "x"}]))
    with pytest.raises(DataError, match=r"listed\.json row 2: needs field"):
        load_annotated(listed)


def test_too_few_unique_prompts_names_the_file_and_the_repeats(tmp_path):
    rows = [*ROWS[:4], ROWS[1], ROWS[2]]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    config = DataConfig(source=str(path), n_train=6)
    with pytest.raises(DataError) as err:
        prepare_data(config)
    message = str(err.value)
    assert str(path) in message and "only 4 unique prompts" in message
    assert (
        "2 rows repeat an earlier prompt: line 5 repeats line 2; line 6 repeats line 3" in message
    )


# ---- SPIN and TRL preference layouts ---------------------------------------------------


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def spin_row(i, generated=None):
    """A row as uclaml/SPIN's generate.py writes it (and as its iteration datasets hold)."""
    prompt = f"question {i} about w{i % 30}"
    return {
        "real": [user(prompt), assistant(f"answer {i}.0")],
        "generated": [
            user(prompt),
            assistant(f"synthetic {i}" if generated is None else generated),
        ],
    }


def trl_standard_row(i):
    return {
        "prompt": f"question {i} about w{i % 30}",
        "chosen": f"answer {i}.0",
        "rejected": f"synthetic {i}",
    }


def trl_conversational_row(i):
    return {
        "prompt": [user(f"question {i} about w{i % 30}")],
        "chosen": [assistant(f"answer {i}.0")],
        "rejected": [assistant(f"synthetic {i}")],
    }


def trl_implicit_prompt_row(i):
    """TRL's conversational layout with the prompt implicit in chosen/rejected."""
    prompt = f"question {i} about w{i % 30}"
    return {
        "chosen": [user(prompt), assistant(f"answer {i}.0")],
        "rejected": [user(prompt), assistant(f"synthetic {i}")],
    }


def ultrafeedback_row(i):
    """HuggingFaceH4/ultrafeedback_binarized: a string prompt, the prompt repeated in chosen/rejected."""
    return {
        "prompt": f"question {i} about w{i % 30}",
        "messages": None,
        **trl_implicit_prompt_row(i),
    }


def expected_records(n):
    return [
        {
            "id": prompt_id(f"question {i} about w{i % 30}"),
            "prompt": f"question {i} about w{i % 30}",
            "real": f"answer {i}.0",
            "source_index": i,
            "generated": f"synthetic {i}",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "make_row",
    [
        spin_row,
        trl_standard_row,
        trl_conversational_row,
        trl_implicit_prompt_row,
        ultrafeedback_row,
    ],
)
def test_spin_and_trl_layouts_in_jsonl_and_parquet(tmp_path, make_row):
    rows = [make_row(i) for i in range(6)]
    jsonl = load_annotated(write_jsonl(tmp_path / "data.jsonl", rows))
    assert jsonl.records == expected_records(6)
    assert detect_layout(rows[0]) in ("spin", "preference")
    assert jsonl.stats()["layouts"] == {detect_layout(rows[0]): 6}
    dataset = datasets.Dataset.from_list(rows)
    dataset.to_parquet(str(tmp_path / "data.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    for source in ("data.parquet", "saved"):
        assert load_annotated(tmp_path / source).records == expected_records(6), source


def test_chat_and_pair_records_carry_no_synthetic_response(tmp_path):
    loaded = load_annotated(write_jsonl(tmp_path / "chat.jsonl", ROWS))
    assert all("generated" not in r for r in loaded.records)
    assert (
        loaded.stats()["layouts"] == {"chat": 40}
        and "n_empty_given_synthetic" not in loaded.stats()
    )
    pairs = [{"prompt": "p1", "real": "r1", "generated": "g1"}, {"prompt": "p2", "real": "r2"}]
    records = load_annotated(write_jsonl(tmp_path / "pairs.jsonl", pairs)).records
    assert records[0]["generated"] == "g1" and "generated" not in records[1]


def test_unknown_layout_lists_the_accepted_ones_and_names_the_file(tmp_path):
    rows = [spin_row(0), {"question": "q", "answer": "a"}]
    jsonl = write_jsonl(tmp_path / "odd.jsonl", rows)
    listed = tmp_path / "odd.json"
    listed.write_text(json.dumps(rows))
    for path, place in ((jsonl, "line 2"), (listed, "row 2")):
        with pytest.raises(DataError) as err:
            load_annotated(path)
        assert str(err.value) == (
            f"{path} {place}: needs field 'messages' (chat), 'conversations' (ShareGPT) or "
            "fields 'prompt' and 'real' "
            "(pairs), 'real' and 'generated' (SPIN) or 'prompt', 'chosen' and 'rejected' "
            "(TRL preference); found fields ['answer', 'question']"
        )


@pytest.mark.parametrize(
    ("bad_row", "pattern"),
    [
        (
            {"real": [user("x"), assistant("y")], "generated": [user("z"), assistant("w")]},
            r"line 3: 'real' and 'generated' share no prompt",
        ),
        (
            {
                "prompt": [user("x"), assistant("y")],
                "chosen": [assistant("y2")],
                "rejected": [assistant("z")],
            },
            r"line 3: field 'prompt' must be chat messages ending with a user message "
            r"\(roles 'system', 'user', 'assistant'\), got roles \['user', 'assistant'\]",
        ),
        (
            {
                "prompt": [{"role": "system", "content": " "}, user("x")],
                "chosen": [assistant("y")],
                "rejected": [assistant("z")],
            },
            r"line 3: field 'prompt': item 0 'content' is empty",
        ),
        (
            {"real": [user("x"), assistant(" ")], "generated": [user("x"), assistant("w")]},
            r"line 3: field 'real' assistant 'content' is empty",
        ),
        ({"prompt": "x", "chosen": "", "rejected": "z"}, r"line 3: field 'chosen' is empty"),
        (
            {"prompt": "x", "chosen": "y", "rejected": 3},
            r"line 3: field 'rejected' must be a string",
        ),
        (
            {"real": [user("x"), "y"], "generated": [user("x"), assistant("w")]},
            r"line 3: field 'real' item 1 must be a mapping",
        ),
    ],
)
def test_spin_and_trl_schema_errors_name_file_row_and_field(tmp_path, bad_row, pattern):
    path = write_jsonl(tmp_path / "data.jsonl", [spin_row(0), spin_row(1), bad_row, spin_row(3)])
    with pytest.raises(DataError, match=pattern):
        load_annotated(path)
    assert load_annotated(path, skip_invalid=True).n_invalid == 1


def test_given_synthetic_responses(tmp_path, tokenizer):
    rows = [trl_conversational_row(i) for i in range(5)]
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    table = given_synthetic(path)
    records = load_annotated(path).records
    assert table == {
        r["id"]: {"id": r["id"], "text": f"synthetic {i}", "truncated": False}
        for i, r in enumerate(records)
    }
    # The table is the generation table the self-play training rows are built from.
    words = [
        {"prompt": f"w{i}", "chosen": f"w{i + 10}", "rejected": f"w{i + 20} w1"} for i in range(3)
    ]
    path = write_jsonl(tmp_path / "words.jsonl", words)
    rows = build_selfplay_records(load_annotated(path).records, given_synthetic(path), tokenizer)
    assert [(r["real"], r["generated"]) for r in rows] == [
        (f"w{i + 10} <eos>", f"w{i + 20} w1 <eos>") for i in range(3)
    ]
    with pytest.raises(DataError) as err:
        given_synthetic(write_jsonl(tmp_path / "chat.jsonl", ROWS))
    places = ", ".join(f"line {n}" for n in range(1, 21))
    assert str(err.value) == (
        f"{tmp_path / 'chat.jsonl'}: 40 row(s) give no synthetic response ({places}, ...); "
        "it is read from SPIN's 'generated' or TRL's 'rejected' field"
    )


def test_empty_given_synthetic_responses_name_the_file_and_rows(tmp_path):
    rows = [spin_row(i, generated=" " if i in (1, 4) else None) for i in range(6)]
    rows[2]["generated"] = rows[2]["generated"][:1]  # stops before its response
    path = write_jsonl(tmp_path / "spin.jsonl", rows)
    loaded = load_annotated(path)  # the annotated data is usable as is
    assert len(loaded.records) == 6 and loaded.stats()["n_empty_given_synthetic"] == 3
    with pytest.raises(DataError) as err:
        given_synthetic(path)
    assert str(err.value) == (
        f"{path}: 3 row(s) give an empty synthetic response: line 2 ('generated'), "
        "line 3 ('generated'), line 5 ('generated'); fill them in or remove those rows"
    )
    prefs = [trl_standard_row(i) for i in range(3)]
    prefs[1]["rejected"] = ""
    datasets.Dataset.from_list(prefs).to_parquet(str(tmp_path / "prefs.parquet"))
    with pytest.raises(
        DataError,
        match=r"prefs\.parquet: 1 row\(s\) give an empty synthetic response: row 2 \('rejected'\)",
    ):
        given_synthetic(tmp_path / "prefs.parquet")


@pytest.mark.parametrize("make_row", [spin_row, trl_standard_row, trl_implicit_prompt_row])
def test_selfplay_entry_point_reads_spin_and_trl_files(tmp_path, make_row):
    """``iris selfplay``'s data stage (``prepare_data``) reads SPIN and TRL files."""
    path = write_jsonl(tmp_path / "data.jsonl", [make_row(i) for i in range(30)])
    split = prepare_data(DataConfig(source=str(path), n_train=20, n_heldout=5, seed=1))
    assert len(split.train) == 20 and len(split.heldout) == 5
    by_id = {r["id"]: r for r in expected_records(30)}
    assert all(r == by_id[r["id"]] for r in split.train + split.heldout)
    assert split.stats["layouts"] == {detect_layout(make_row(0)): 30}
    # the same prompts as chat data give the same subsets
    chat = write_jsonl(tmp_path / "chat.jsonl", [ultrachat_row(i) for i in range(30)])
    chat_split = prepare_data(DataConfig(source=str(chat), n_train=20, n_heldout=5, seed=1))
    assert [r["id"] for r in chat_split.train] == [r["id"] for r in split.train]


def test_hub_preference_dataset_reads_chosen_and_rejected(monkeypatch):
    rows = [ultrafeedback_row(i) for i in range(8)]
    for row in rows:
        row["messages"] = row["chosen"]
    monkeypatch.setattr(
        datasets, "load_dataset", lambda path, **kw: datasets.Dataset.from_list(rows)
    )
    loaded = load_annotated(
        "HuggingFaceH4/ultrafeedback_binarized", split="train_prefs", revision="r"
    )
    assert loaded.records == expected_records(8)
    assert (
        given_synthetic("org/prefs", split="train_prefs", revision="r")[loaded.records[3]["id"]][
            "text"
        ]
        == "synthetic 3"
    )


def test_readme_data_format_examples_load(tmp_path):
    """Every example of the README's "Data formats" section loads as three records."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Data formats", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 6
    layouts = []
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.jsonl"
        path.write_text(block)
        loaded = load_annotated(path)
        # the user turn each prompt ends with (ShareGPT's first one has a system message)
        assert [prompt_messages(r["prompt"])[-1]["content"] for r in loaded.records] == [
            "Name a prime.",
            "Capital of Peru?",
            "2+2?",
        ]
        assert [r["real"] for r in loaded.records] == ["7", "Lima", "4"]
        layouts.append(next(iter(loaded.layouts)))
        if "generated" in loaded.records[0]:
            assert [g["text"] for g in given_synthetic(path).values()] == ["9", "Cusco", "5"]
    assert layouts == ["chat", "pairs", "spin", "preference", "sharegpt", "preference"]


_TEXTS = st.sampled_from(["", " ", "a", "a b", "a c"])
_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", 3]),
            "content": st.one_of(_TEXTS, st.none()),
        }
    ),
    max_size=4,
)
_VALUES = st.one_of(st.none(), _TEXTS, _MESSAGES, st.integers(), st.lists(_TEXTS, max_size=2))
_FIELDS = ("prompt", "chosen", "rejected", "real", "generated", "messages", "response")


@settings(deadline=None, max_examples=400)
@given(st.fixed_dictionaries({}, optional=dict.fromkeys(_FIELDS, _VALUES)))
def test_any_row_is_a_record_or_a_data_error(row):
    try:
        record = iris_data.row_to_record(row, where="f.jsonl line 1", index=0)
    except DataError as err:
        assert str(err).startswith("f.jsonl line 1: ")
        return
    assert record["prompt"].strip() and record["real"].strip()
    assert isinstance(record.get("generated", ""), str)
