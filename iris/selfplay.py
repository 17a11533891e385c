"""The self-play loop: T iterations of generate → build → train → evaluate, resumably.

This module owns the order of the stages and nothing else: every stage is a call into
the module that owns it (:mod:`iris.data`, :mod:`iris.generation`, :mod:`iris.trainer`,
an :class:`Evaluator`), and every output lands in a :class:`iris.runs.RunDir`.

Per run: ``data`` (select, validate and write the annotated records) and, for losses that
take a proto-synthetic response (T-SPIN), ``proto`` (generated once by θ0). Per
iteration t, with θt the starting checkpoint (t = 0) or the model of iteration t − 1:

1. ``generate``: one synthetic response per training prompt, sampled from θt;
2. ``train``: the rows (prompt, annotated, synthetic[, proto]) — the synthetic responses
   of iteration t, or of t − 1 and t (``synthetic_from="previous_and_current"``, SPIN) —
   trained with :class:`iris.trainer.IrisTrainer` from θt with reference θt; the
   α schedule's state is carried from iteration t − 1;
3. ``eval``: the evaluator scores the new model, when it asks to.

Re-running the same command skips every stage whose ``.DONE`` marker verifies (its
outputs still match what the marker recorded: see :mod:`iris.runs`; checked by the main
process only, at a cost independent of the model's size), continues an interrupted generation from its completed
shards and an interrupted training from its last checkpoint, and refuses to write into a
run directory whose saved config differs in anything that changes results.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iris import console
from iris.checkpoints import gguf_source, start_checkpoint
from iris.config import ConfigError, SelfPlayConfig, non_result_keys, to_dict
from iris.data import (
    DataError,
    build_selfplay_records,
    format_prompts,
    given_synthetic,
    prepare_data,
    read_records,
    write_records,
)
from iris.generation import (
    BackendSpec,
    BackendUnavailableError,
    SamplingParams,
    default_engines,
    derive_seed,
    generate_shards,
    generate_to_file,
    merge_shards,
    meta_path,
    read_generations,
    resolve_backend_name,
)
from iris.runs import (
    HELDOUT_FILE,
    RunDir,
    atomic_write_json,
    atomic_write_jsonl,
    last_complete_checkpoint,
    read_json,
)
from iris.sft import SFT_LOSS, sft_rows, train_sft

if TYPE_CHECKING:
    from iris.evaluation.base import Evaluator

logger = logging.getLogger(__name__)

TRAIN_RECORDS = "train.jsonl"
HELDOUT_RECORDS = HELDOUT_FILE
DATA_STATS = "stats.json"
# iter_<t>/: the training rows as an Arrow dataset every rank reads (removed once trained).
TRAIN_DATASET = "train_dataset"
# The evaluation of θt measured before training iteration t (α schedules with gap="evaluation").
ENTERING_EVAL = "entering_eval"


def _distributed_state():
    """accelerate's process state, checked against the launch (one process when not launched)."""
    from accelerate import PartialState

    from iris.launch import check_processes
    from iris.trainer._config import cpu_only

    state = PartialState(cpu=cpu_only())  # the group the trainers will join
    check_processes(state.num_processes)
    return state


def _stage_done(run: RunDir, state, stage: str, iteration: int | None = None) -> bool:
    """Whether a stage is complete, verified by the main process and told to the others.

    One process reads the outputs (on a shared filesystem every rank reading every model
    would multiply the cost by the world size) and every rank takes the same decision.
    """
    done = [run.stage_done(stage, iteration) if state.is_main_process else None]
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(done, from_process=0)
    return bool(done[0])


def _loss_name(config: SelfPlayConfig) -> str:
    return str(config.training.get("loss", "iris"))


def _is_supervised(config: SelfPlayConfig) -> bool:
    """``training.loss: sft``: the SFT baseline, trained by the same loop without generation."""
    return _loss_name(config) == SFT_LOSS


def _needs_proto(config: SelfPlayConfig) -> bool:
    from iris.trainer import loss_spec

    return not _is_supervised(config) and "proto" in loss_spec(_loss_name(config)).extra_groups


def _model_path(config: SelfPlayConfig, run: RunDir, iteration: int) -> tuple[str, str | None]:
    """θt: the starting checkpoint for t = 0, else the model written by iteration t − 1."""
    if iteration == 0:
        return start_checkpoint(
            config.model.name_or_path, config.model.gguf_file
        ), config.model.revision
    return str(run.model_dir(iteration - 1)), None


def _load_tokenizer(config: SelfPlayConfig, run: RunDir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(*_model_path(config, run, 0))


def _stage_model(config: SelfPlayConfig, state) -> None:
    """A GGUF starting checkpoint made plain once (main process first, then the others)."""
    if gguf_source(config.model.name_or_path, config.model.gguf_file) is None:
        return
    if state.is_main_process:
        import time

        start = time.perf_counter()
        print(f"── model: {config.model.name_or_path}", flush=True)
        path = start_checkpoint(config.model.name_or_path, config.model.gguf_file)
        print(f"   plain checkpoint {path} ({time.perf_counter() - start:.1f} s)", flush=True)
    state.wait_for_everyone()


def _stage_data(config: SelfPlayConfig, run: RunDir, state) -> None:
    train_path = run.data_dir / TRAIN_RECORDS
    if not _stage_done(run, state, "data"):
        with console.stage(run, "data", show=state.is_main_process) as info:
            if state.is_main_process:
                split = prepare_data(config.data)
                write_records(train_path, split.train)
                write_records(run.heldout_path, split.heldout)
                atomic_write_json(run.data_dir / DATA_STATS, split.stats)
                info.update(train=len(split.train), heldout=len(split.heldout))
            state.wait_for_everyone()
            run.mark_done("data", [run.data_dir])


def _generate(
    config: SelfPlayConfig,
    run: RunDir,
    state,
    *,
    stage: str,
    iteration: int | None,
    model: tuple[str, str | None],
    items: Sequence[Mapping[str, Any]],
    output: Path,
    seed: int,
) -> None:
    """One generation stage: sample ``items`` with ``model`` into ``output`` (resumable)."""
    if _stage_done(run, state, stage, iteration):
        return
    gen = config.generation
    with console.stage(run, stage, iteration, show=state.is_main_process) as info:
        spec = BackendSpec(
            gen.backend,
            model[0],
            revision=model[1],
            dtype=config.model.dtype,
            batch_size=gen.batch_size,
            tensor_parallel_size=gen.tensor_parallel_size,
            vllm_kwargs=gen.vllm_kwargs,
        )
        job = {
            "params": SamplingParams.from_config(gen),
            "seed": seed,
            "shard_size": gen.shard_size,
            "fingerprint_extra": {"model": model[0], "revision": model[1]},
        }
        if state.num_processes > 1 and not output.is_file():
            # Launched processes: shard k is generated by rank k mod W, then merged on rank 0.
            generate_shards(
                spec,
                items,
                output,
                **job,
                rank=state.process_index,
                world_size=state.num_processes,
            )
            state.wait_for_everyone()
            if state.is_main_process:
                merge_shards(spec, items, output, **job)
        meta: dict[str, Any] = {}
        if state.is_main_process:
            # One process: one engine per GPU (group), the model loaded only if work is left;
            # or the meta of a complete output.
            engines = 1 if state.num_processes > 1 else default_engines(spec)
            meta = generate_to_file(spec, items, output, **job, engines=engines)
            info.update(
                rows=meta.get("n"),
                truncated_fraction=meta.get("truncated_fraction"),
                generated_tokens=meta.get("generated_tokens"),
                generation_s=meta.get("elapsed_s"),
                engines=meta.get("engines"),
            )
        state.wait_for_everyone()
        run.mark_done(stage, [output, meta_path(output)], iteration)


def _given(config: SelfPlayConfig, iteration: int) -> dict[str, Any] | None:
    """Where iteration t's synthetic responses are given (``generation.given``), or None."""
    given = config.generation.given
    if iteration >= len(given) or given[iteration] is None:
        return None
    data = config.data
    source = data.source if given[iteration] == "data" else given[iteration]
    return {
        "source": source,
        "split": data.split,
        "revision": data.revision if given[iteration] == "data" else None,
        "skip_invalid": data.skip_invalid,
        "repeated_prompts": data.repeated_prompts,
    }


def _given_table(config: SelfPlayConfig, iteration: int, records) -> dict[str, dict[str, Any]]:
    """Iteration t's given synthetic responses, one per training prompt (else a DataError)."""
    where = _given(config, iteration)
    table = given_synthetic(**where)
    missing = [r for r in records if r["id"] not in table]
    if missing:
        raise DataError(
            f"{where['source']} (generation.given[{iteration}]): no synthetic response for "
            f"{len(missing)} of the {len(records)} training prompts, e.g. "
            f"{missing[0]['prompt'][:80]!r}; it must hold every prompt of data.source"
        )
    return table


def _stage_given(
    config: SelfPlayConfig, run: RunDir, state, iteration: int, records, table
) -> None:
    """The generate stage of an iteration whose synthetic responses are given: copy them."""
    if _stage_done(run, state, "generate", iteration):
        return
    output = run.generated_path(iteration)
    with console.stage(run, "generate", iteration, show=state.is_main_process) as info:
        if state.is_main_process:
            atomic_write_jsonl(output, [table[r["id"]] for r in records])
            info.update(rows=len(records), given=_given(config, iteration)["source"])
        state.wait_for_everyone()
        run.mark_done("generate", [output], iteration)


def _training_rows(
    config: SelfPlayConfig,
    run: RunDir,
    iteration: int,
    records: Sequence[Mapping[str, Any]],
    tokenizer,
    proto: Mapping[str, Mapping[str, Any]] | None,
) -> list[dict[str, Any]]:
    sources = [iteration]
    if config.synthetic_from == "previous_and_current" and iteration > 0:
        sources = [iteration - 1, iteration]
    rows: list[dict[str, Any]] = []
    for t in sources:
        generated = read_generations(run.generated_path(t))
        rows += build_selfplay_records(records, generated, tokenizer, proto=proto, tag=f"iter_{t}")
    return rows


def _schedule_state(run: RunDir, iteration: int) -> dict[str, Any] | None:
    """The α schedule state saved by the previous iteration's trainer (None at t = 0)."""
    from iris.trainer import SCHEDULE_FILE

    if iteration == 0:
        return None
    path = run.iteration_dir(iteration - 1) / SCHEDULE_FILE
    return read_json(path) if path.is_file() else None


def trainer_args(config: SelfPlayConfig, iteration: int, output_dir: str | Path):
    """Iteration ``iteration``'s trainer config (an IrisConfig, or an SFTConfig for
    ``loss: sft``), as its train stage builds it.

    A mistake inside ``training:`` (an unknown key, a bad value) raises
    :class:`iris.config.ConfigError` naming the key, so the driver can check every
    iteration's config before any stage runs.
    """
    import dataclasses
    import re

    from trl import SFTConfig

    from iris.config import check_scalar_fields, suggest
    from iris.sft import sft_config
    from iris.trainer import IrisConfig
    from iris.trainer._config import cpu_only

    settings = config.training_for_iteration(iteration)
    settings.setdefault("seed", derive_seed(config.seed, "train", iteration) % 2**31)
    where = "training" if config.iterations == 1 else f"training (iteration {iteration})"
    schema = SFTConfig if _is_supervised(config) else IrisConfig
    check_scalar_fields(schema, {k: v for k, v in settings.items() if k != "loss"}, "training.")
    if float(settings.get("learning_rate", 0.0)) < 0:
        raise ConfigError(f"training.learning_rate must be >= 0, got {settings['learning_rate']}")
    if settings.get("fp16") and cpu_only():
        raise ConfigError("training.fp16: fp16 mixed precision needs a GPU, and none is visible")
    try:
        if _is_supervised(config):
            return sft_config(settings, output_dir=output_dir)
        return IrisConfig(output_dir=str(output_dir), iteration=iteration, **settings)
    except TypeError as err:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unknown is None:
            raise ConfigError(f"{where}: {err}") from err
        key = unknown.group(1)
        fields = [f.name for f in dataclasses.fields(schema)]
        raise ConfigError(
            f"training.{key}: unknown key of the trainer config.{suggest(key, fields)}"
        ) from err
    except ValueError as err:
        text = str(err).strip().splitlines()[0]
        key = re.match(r"`?(\w+)", text)  # "alpha must be > 0", "`mu` does not apply …"
        if key and key.group(1) in settings:
            where = f"training.{key.group(1)}" + where.removeprefix("training")
        raise ConfigError(f"{where}: {text}") from err


def _check_sources(config: SelfPlayConfig) -> None:
    """The starting model and the data exist (locally, or as a hub id; offline: in the cache)."""
    import os

    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from iris.data import is_missing_local_file
    from iris.packages import PackageFileError, resolve

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    model, revision = config.model.name_or_path, config.model.revision
    try:
        gguf = gguf_source(model, config.model.gguf_file)
        path = Path(resolve(model)).expanduser()
    except PackageFileError as err:
        raise ConfigError(f"model.name_or_path: {err}") from err
    if gguf is not None:
        if not gguf.is_file():
            key = "model.gguf_file" if config.model.gguf_file else "model.name_or_path"
            raise ConfigError(f"{key}: GGUF file {gguf} does not exist")
    elif path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path: {model} has no config.json (not a model)")
    else:
        try:
            validate_repo_id(model)
        except HFValidationError as err:
            raise ConfigError(f"model.name_or_path: {model} does not exist") from err
        if offline and not isinstance(
            try_to_load_from_cache(model, "config.json", revision=revision), str
        ):
            raise ConfigError(
                f"model.name_or_path: {model} is neither a local directory nor a hub model in "
                "the local cache (HF_HUB_OFFLINE=1: download it once online)"
            )
    sources = [("data.source", config.data.source)] + [
        (f"generation.given[{t}]", s)
        for t, s in enumerate(config.generation.given)
        if s not in (None, "data")
    ]
    for key, source in sources:
        try:
            missing = is_missing_local_file(resolve(source))
        except PackageFileError as err:
            raise ConfigError(f"{key}: {err}") from err
        if missing:
            raise ConfigError(f"{key}: {source} does not exist")


def _check_training(config: SelfPlayConfig, evaluator: Evaluator | None = None) -> None:
    """Build every iteration's trainer config once, before any stage (seconds, not hours)."""
    import warnings

    from transformers.integrations import get_reporting_integration_callbacks
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from iris.schedules import make_schedule

    _lora_config(config)  # peft is installed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(config.iterations):
            args = trainer_args(config, t, Path(config.output_dir) / f"iter_{t}")
            schedule = getattr(args, "alpha_schedule", None)
            made = make_schedule(schedule) if schedule is not None else None
            if made is None or "evaluated_gap" not in made.measurements():
                continue
            if evaluator is None:
                raise ConfigError(
                    "training.alpha_schedule: gap 'evaluation' measures θt with the run's "
                    "evaluator, and this run has none (set evaluation.kind)"
                )
            names = evaluator.metric_names() if hasattr(evaluator, "metric_names") else None
            if names is not None and made.gap_metric not in names:
                raise ConfigError(
                    f"training.alpha_schedule.gap_metric: the {evaluator.name} evaluator does "
                    f"not report {made.gap_metric!r}; it reports {', '.join(sorted(names))}"
                )
    unset_hf_deepspeed_config()  # a DeepSpeed launch's args register ZeRO-3 loading globally
    for callback in get_reporting_integration_callbacks(args.report_to):
        try:
            callback()  # checks that its package is installed; connects nothing yet
        except (ImportError, RuntimeError) as err:
            raise ConfigError(f"training.report_to: {err}") from err


def _shared_dataset(state, directory: Path, build: Callable[[], list[dict[str, Any]]]):
    """The training rows as one on-disk dataset: built and saved by the main process, read by all.

    Every rank trains on ``load_from_disk(directory)``, so TRL's tokenisation and
    reference log-prob caches lie beside it: the main process writes each cache first
    and the other ranks read it (an in-memory dataset would give every rank its own
    temporary cache, which rank 0's reference log-probs never reach).
    """
    import datasets

    if state.is_main_process:
        shutil.rmtree(directory, ignore_errors=True)  # an interrupted attempt's copy and caches
        shown = not datasets.are_progress_bars_disabled()
        datasets.disable_progress_bars()  # a bookkeeping copy: no bar on the console
        try:
            datasets.Dataset.from_list(build()).save_to_disk(str(directory))
        finally:
            if shown:
                datasets.enable_progress_bars()
    state.wait_for_everyone()
    return datasets.load_from_disk(str(directory))


def _entering_gap(
    config: SelfPlayConfig, run: RunDir, state, iteration: int, evaluator: Evaluator, metric: str
) -> float:
    """The evaluator's ``metric`` of θt, the model entering ``iteration``: the measurement of
    an α schedule with ``gap="evaluation"`` (an oracle on the testbed). θt (t ≥ 1) is the
    model iteration t − 1 evaluated when its eval stage ran: that summary's ``flat`` score
    is read back; otherwise the main process evaluates θt into ``iter_<t>/entering_eval/``.
    ``entering_eval/gap.json`` records the value and its source, read by every process."""
    out = run.iteration_dir(iteration) / ENTERING_EVAL
    path = out / "gap.json"
    if state.is_main_process and not path.is_file():
        summary = None
        if iteration > 0 and run.stage_done("eval", iteration - 1):
            summary = run.eval_dir(iteration - 1) / f"{evaluator.name}.summary.json"
        if summary is not None and summary.is_file():
            source, scores = summary, read_json(summary).get("flat", {})
        else:
            model_path, _ = _model_path(config, run, iteration)
            source = out
            scores = evaluator.evaluate(Path(model_path), iteration=iteration, output_dir=out)
        value = scores.get(metric)
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise ConfigError(
                f"training.alpha_schedule.gap_metric: the evaluator reports no {metric!r} "
                f"as a number (it reports {', '.join(sorted(scores))})"
            )
        source = source.relative_to(run.root).as_posix()
        atomic_write_json(path, {"metric": metric, "value": value, "source": source})
    state.wait_for_everyone()
    return float(read_json(path)["value"])


def _lora_config(config: SelfPlayConfig):
    """``model.lora`` as a ``peft.LoraConfig`` (None without it); a missing peft is a
    ConfigError, raised by :func:`_check_training` before any stage."""
    if config.model.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError as err:
        raise ConfigError(
            "model.lora: LoRA needs the peft package (pip install 'iris-selfplay[peft]')"
        ) from err
    lora = config.model.lora
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=lora.modules_to_save,
    )


def _stage_train(
    config: SelfPlayConfig,
    run: RunDir,
    state,
    iteration: int,
    records: Sequence[Mapping[str, Any]],
    tokenizer,
    proto: Mapping[str, Mapping[str, Any]] | None,
    evaluator: Evaluator | None = None,
):
    """Train θt+1 from θt; returns the trained model (in memory) or None if skipped.

    With ``model.lora`` the iteration trains a fresh LoRA adapter (peft, ``CAUSAL_LM``) on
    top of θt instead of all weights, and its reference is θt itself, the adapter-disabled
    model (TRL's handling of ``ref_model=None`` with a PEFT model, for precomputed and live
    reference log-probs alike: no second copy in memory). θt+1 is θt with the adapter merged
    in, saved as a plain model, so the next iteration's generation (HF or vLLM) and training
    load a plain checkpoint and train a new adapter from it: adapters are not stacked and
    each iteration's reference is its own starting point, as in full fine-tuning.
    """
    if _stage_done(run, state, "train", iteration):
        return None
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from iris.schedules import Measurement, make_schedule
    from iris.trainer import SCHEDULE_FILE, IrisTrainer

    iteration_dir = run.iteration_dir(iteration)
    model_path, revision = _model_path(config, run, iteration)
    dtype_name = config.model.train_dtype or config.model.dtype
    dtype = getattr(torch, dtype_name) if dtype_name != "auto" else "auto"
    dataset_dir = iteration_dir / TRAIN_DATASET
    peft_config = _lora_config(config)
    base = (model_path, revision, dtype)  # θt, onto which a LoRA adapter is merged
    if _is_supervised(config):
        with console.stage(run, "train", iteration, show=state.is_main_process) as info:
            dataset = _shared_dataset(state, dataset_dir, lambda: sft_rows(records, tokenizer))
            model = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, dtype=dtype)
            args = trainer_args(config, iteration, iteration_dir)
            if peft_config is not None:  # the adapter's random init: the same on every rank
                set_seed(args.seed)
            trainer = train_sft(
                model,
                tokenizer,
                dataset,
                args,
                desc=f"iteration {iteration} · train",
                peft_config=peft_config,
            )
            info.update(rows=len(dataset))
            return _finish_training(run, state, iteration, trainer, tokenizer, info, [], base)

    def build_rows() -> list[dict[str, Any]]:
        rows = _training_rows(config, run, iteration, records, tokenizer, proto)
        write_records(run.train_data_path(iteration), rows)
        return rows

    with console.stage(run, "train", iteration, show=state.is_main_process) as info:
        dataset = _shared_dataset(state, dataset_dir, build_rows)
        args = trainer_args(config, iteration, iteration_dir)
        schedule = None
        if args.alpha_schedule is not None:
            schedule = make_schedule(args.alpha_schedule)
            previous = _schedule_state(run, iteration)
            if previous is not None:
                schedule.load_state_dict(previous.get("state", {}))
            if "evaluated_gap" in schedule.measurements():
                assert evaluator is not None  # checked by run_selfplay before any stage
                gap = _entering_gap(config, run, state, iteration, evaluator, schedule.gap_metric)
                schedule.observe(Measurement(evaluated_gap=gap))
        model = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, dtype=dtype)
        if peft_config is not None:  # the adapter's random init: the same on every rank
            set_seed(args.seed)
        trainer = IrisTrainer(
            model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            alpha_schedule=schedule,
            peft_config=peft_config,  # ref_model=None: the reference is the adapter-disabled θt
        )
        console.show_progress(trainer, f"iteration {iteration} · train")
        checkpoint = last_complete_checkpoint(iteration_dir)
        trainer.train(resume_from_checkpoint=checkpoint)
        info.update(rows=len(dataset))
        outputs = [run.train_data_path(iteration)]
        if (iteration_dir / SCHEDULE_FILE).is_file():
            outputs.append(iteration_dir / SCHEDULE_FILE)
        return _finish_training(run, state, iteration, trainer, tokenizer, info, outputs, base)


def _finish_training(
    run: RunDir, state, iteration: int, trainer, tokenizer, info, outputs, base=None
):
    """Save θt+1 and its tokenizer, drop the checkpoints, mark the stage done.

    A LoRA training (a PEFT model) saves its adapter to ``iter_<t>/adapter/`` and θt+1 =
    θt with the adapter merged in (``base``: θt's path, revision and dtype) to
    ``iter_<t>/model/`` as a plain model; every rank joins the adapter's save (DeepSpeed
    gathers it), the main process alone writes.
    """
    from accelerate.utils import is_peft_model

    from iris.launch import engine_name
    from iris.trainer import METRICS_FILE

    iteration_dir = run.iteration_dir(iteration)
    model = trainer.model
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if is_peft_model(unwrapped):
        adapter_dir = iteration_dir / "adapter"
        trainer.save_model(str(adapter_dir))
        if state.is_main_process:
            tokenizer.save_pretrained(str(adapter_dir))
        trainable, total = unwrapped.get_nb_trainable_parameters()
        info.update(adapter=adapter_dir.name, trainable_parameters=trainable, parameters=total)
        model = _save_merged(trainer, state, adapter_dir, run.model_dir(iteration), base) or model
        outputs = [*outputs, adapter_dir]
    else:
        trainer.save_model(str(run.model_dir(iteration)))
    if state.is_main_process:
        tokenizer.save_pretrained(str(run.model_dir(iteration)))
        for stale in [*iteration_dir.glob("checkpoint-*"), iteration_dir / TRAIN_DATASET]:
            shutil.rmtree(stale, ignore_errors=True)
    losses = [e["train_loss"] for e in trainer.state.log_history if "train_loss" in e]
    info.update(
        train_loss=losses[-1] if losses else None,
        steps=trainer.state.global_step,
        engine=engine_name(trainer.accelerator.state),
        processes=trainer.accelerator.num_processes,
    )
    state.wait_for_everyone()
    # DeepSpeed ZeRO-3's training arguments make every later from_pretrained a collective
    # partitioned load (zero.Init): rank 0 alone loading the model to evaluate it would then
    # wait for the other ranks forever. The next iteration's arguments set it again.
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    run.mark_done(
        "train", [*outputs, run.model_dir(iteration), iteration_dir / METRICS_FILE], iteration
    )
    return model


def _save_merged(trainer, state, adapter_dir: Path, model_dir: Path, base):
    """θt+1 = θt + the trained LoRA delta, saved by the main process to ``model_dir`` as a
    plain model (no peft keys); returns it there (None on the other ranks).

    Where every process holds whole parameters (one process, DDP, DeepSpeed ZeRO-1/2) the
    trained adapter is merged into the trainer's own model (after its adapter was saved:
    the trainer's model is a plain model from then on). Where they are sharded (ZeRO-3,
    FSDP) the main process loads θt from ``base`` (path, revision, dtype) and merges the
    saved adapter into it.
    """
    import torch

    plugin = trainer.accelerator.state.deepspeed_plugin
    sharded = trainer.is_fsdp_enabled or (plugin is not None and plugin.zero_stage == 3)
    merged = None
    if state.is_main_process:
        if sharded:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()  # a plain load on one process, not a partitioned one
            path, revision, dtype = base
            model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=dtype)
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        else:
            model = trainer.accelerator.unwrap_model(trainer.model)
        with torch.no_grad():
            merged = model.merge_and_unload()
        merged.save_pretrained(str(model_dir))
    state.wait_for_everyone()
    return merged


def _stage_eval(
    config: SelfPlayConfig,
    run: RunDir,
    state,
    iteration: int,
    evaluator: Evaluator,
    model,
    tokenizer,
) -> None:
    if _stage_done(run, state, "eval", iteration):
        return
    with console.stage(run, "eval", iteration, show=state.is_main_process) as info:
        if state.is_main_process:  # one evaluation, written once
            # Several processes: the in-memory model may be sharded (ZeRO-3, FSDP), so
            # rank 0 evaluates the saved model on its own.
            in_memory = model if state.num_processes == 1 else None
            scores = evaluator.evaluate(
                run.model_dir(iteration),
                iteration=iteration,
                output_dir=run.eval_dir(iteration),
                model=in_memory,
                tokenizer=tokenizer if in_memory is not None else None,
            )
            info.update(scores={k: scores[k] for k in sorted(scores)[:20]})
        state.wait_for_everyone()
        run.mark_done("eval", [run.eval_dir(iteration)], iteration)


PER_ITERATION_KEYS = ("learning_rates", "betas", "per_iteration")


def _extension_keys(run: RunDir, config: SelfPlayConfig) -> list[str]:
    """Keys that may differ from the saved config because this invocation extends the run.

    Raising ``iterations`` adds iterations after the saved ones: nothing completed depends
    on the count, provided every per-iteration list keeps its saved values for the saved
    iterations (appending values for the new ones). Otherwise nothing is excused.
    """
    if not run.exists():
        return []
    saved = run.read_manifest().get("config", {})
    before = saved.get("iterations")
    if not isinstance(before, int) or config.iterations <= before:
        return []
    current = to_dict(config)
    for key in ("learning_rates", "betas"):
        old, new = saved.get(key), current.get(key)
        if (old is None) != (new is None) or (old is not None and new[:before] != old):
            return []
    old_lists, new_lists = saved.get("per_iteration") or {}, current.get("per_iteration") or {}
    if set(old_lists) != set(new_lists) or any(
        new_lists[k][:before] != old_lists[k] for k in old_lists
    ):
        return []
    logger.info("extending %s from %d to %d iterations", run.root, before, config.iterations)
    return ["iterations", *PER_ITERATION_KEYS]


STAGES = ("data", "proto", "generate", "train", "eval")

# The config keys (dotted prefixes) each stage's outputs depend on, its upstream included.
_DATA_INPUTS = ("data",)
_GENERATE_INPUTS = (*_DATA_INPUTS, "model", "seed", "generation")
_TRAIN_INPUTS = (*_GENERATE_INPUTS, "training", "synthetic_from", "iterations", *PER_ITERATION_KEYS)


def stage_inputs(stage_key: str) -> tuple[str, ...] | None:
    """The keys a completed stage (``"data"``, ``"iter_1/generate"``…) read, for the resume
    check: a changed key that no completed stage read is accepted. None: unknown, all keys."""
    iteration, _, stage = stage_key.rpartition("/")
    if stage == "data":
        return _DATA_INPUTS
    if stage == "proto" or (stage == "generate" and iteration == "iter_0"):
        return _GENERATE_INPUTS
    if stage in ("generate", "train"):  # θt (t ≥ 1) comes out of the training of t − 1
        return _TRAIN_INPUTS
    if stage == "eval":
        return (*_TRAIN_INPUTS, "evaluation")
    return None


class _Skip:
    """Decides which stages this invocation may run (all, or one stage of one iteration)."""

    def __init__(self, stage: str | None, iteration: int | None):
        if stage is not None and stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        if stage in ("generate", "train", "eval") and iteration is None:
            raise ValueError(f"stage {stage!r} runs for one iteration: give its iteration")
        self.stage, self.iteration = stage, iteration

    def allows(self, run: RunDir, stage: str, iteration: int | None) -> bool:
        """True to run ``stage``; False to skip it when done; raises when it is needed but
        neither done nor allowed (a cluster job for a later stage ran too early)."""
        if self.stage is None or stage == "data":
            return True  # selecting the data is cheap: any job may do it first
        if stage == "proto" and self.stage == "generate":
            return True  # a generation job also makes the proto-synthetic responses
        at_target = iteration is None or iteration == self.iteration
        if at_target and STAGES.index(stage) > STAGES.index(self.stage):
            return False  # comes after the requested stage
        wanted = stage == self.stage and at_target
        if wanted or run.stage_done(stage, iteration, verify=False):
            return wanted
        where = "" if iteration is None else f" of iteration {iteration}"
        raise RuntimeError(
            f"stage '{stage}'{where} is not complete in {run.root}; run it first "
            f"(iris {stage} ...) before '{self.stage}'"
        )


def run_selfplay(
    config: SelfPlayConfig,
    *,
    evaluator: Evaluator | None = None,
    command: Sequence[str] | None = None,
    stage: str | None = None,
    iteration: int | None = None,
) -> RunDir:
    """Run (or resume) the self-play loop of ``config``; returns its run directory.

    With ``stage`` (and optionally ``iteration``) only that stage runs, for clusters that
    run stages as separate jobs; the stages it depends on must already be complete.
    """
    if config.output_dir is None:
        raise ConfigError("no run directory: give --output-dir (or set IRIS_RUNS_DIR)")
    if iteration is not None and not 0 <= iteration < config.iterations:
        raise ConfigError(
            f"--iteration {iteration} is outside this run's iterations 0..{config.iterations - 1} "
            f"(iterations: {config.iterations})"
        )
    _check_sources(config)
    _check_training(config, evaluator)
    if stage in ("generate", "proto") and not _is_supervised(config):
        try:  # a generation job needs its backend; the other stages' jobs do not
            resolve_backend_name(config.generation.backend)
        except BackendUnavailableError as err:
            raise ConfigError(f"generation.backend: {err}") from err
    state = _distributed_state()
    _stage_model(config, state)
    run = RunDir(config.output_dir, main_process=state.is_main_process)
    run.start(
        to_dict(config),
        non_result_keys=non_result_keys(config) + _extension_keys(run, config),
        seeds={"seed": config.seed},
        command=list(command) if command is not None else sys.argv,
        inputs=stage_inputs,
    )
    skip = _Skip(stage, iteration)
    if skip.allows(run, "data", None):
        _stage_data(config, run, state)
    records = read_records(run.data_dir / TRAIN_RECORDS)
    given = {  # read and checked once, before any generation or training
        t: _given_table(config, t, records)
        for t in range(config.iterations)
        if _given(config, t) and not run.stage_done("generate", t)
    }
    tokenizer = _load_tokenizer(config, run)
    prompts = format_prompts(tokenizer, [r["prompt"] for r in records])
    items = [{"id": r["id"], "prompt": p} for r, p in zip(records, prompts, strict=True)]

    proto = None
    if _needs_proto(config):
        if skip.allows(run, "proto", None):
            _generate(
                config,
                run,
                state,
                stage="proto",
                iteration=None,
                model=_model_path(config, run, 0),
                items=items,
                output=run.proto_path,
                seed=derive_seed(config.seed, "proto"),
            )
        proto = read_generations(run.proto_path)

    if skip.stage in ("data", "proto"):
        last = -1  # run-level stage only
    else:
        last = config.iterations - 1 if skip.iteration is None else skip.iteration
    for t in range(last + 1):
        if not _is_supervised(config) and skip.allows(run, "generate", t) and t in given:
            _stage_given(config, run, state, t, records, given[t])
        elif not _is_supervised(config) and skip.allows(run, "generate", t):
            _generate(
                config,
                run,
                state,
                stage="generate",
                iteration=t,
                model=_model_path(config, run, t),
                items=items,
                output=run.generated_path(t),
                seed=derive_seed(config.seed, "generate", t),
            )
        model = None
        if skip.allows(run, "train", t):
            model = _stage_train(config, run, state, t, records, tokenizer, proto, evaluator)
        wants_eval = evaluator is not None and evaluator.should_run(t, config.iterations)
        if wants_eval and (skip.stage in (None, "eval")) and skip.allows(run, "eval", t):
            _stage_eval(config, run, state, t, evaluator, model, tokenizer)
        del model
    run.finish()
    logger.info("self-play run complete: %s", run.root)
    return run


def summary(run: RunDir) -> str:
    """One line on a run directory's completed stages (for the CLI's last line)."""
    stages = run.read_manifest().get("stages", {})
    done = [attempts[-1] for attempts in stages.values() if attempts[-1].get("status") == "done"]
    seconds = sum(a.get("duration_s") or 0.0 for a in done)
    return f"{len(done)} of {len(stages)} stages done ({seconds:.0f} s in all); run directory: {run.root}"
