"""IrisDataCollator: TRL's preference collator, plus extra response groups and bookkeeping."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from trl.trainer.dpo_trainer import DataCollatorForPreference

# Keys the collator adds that are not model inputs.
ROW_INDEX = "row_index"
TRUNCATED = "truncated"


@dataclass
class IrisDataCollator(DataCollatorForPreference):
    """:class:`trl.trainer.dpo_trainer.DataCollatorForPreference` for self-play rows.

    Rows of the batch (``input_ids``, ``attention_mask``, ``completion_mask``) are
    ``[real (B), generated (B), *extra_groups (B each)]``: TRL's collator builds the first
    two (``chosen``/``rejected``) and, for each extra group ``g`` (e.g. T-SPIN's
    ``proto``), its rows are built by the same collator from ``prompt_ids + g_ids`` and
    appended, right-padded to a common length. Precomputed reference log-probs
    (``ref_chosen_logps``, ``ref_rejected_logps``) pass through as in TRL.

    Added keys: ``row_index`` (B,), the dataset row of each prompt (from the ``iris_row``
    column; positions in the batch if absent), and ``truncated`` (G·B,) bool, whether
    prompt + response exceeded ``max_length`` and was truncated (TRL's ``keep_start``
    policy keeps the first ``max_length`` tokens, so the end of the response is cut).
    """

    extra_groups: tuple[str, ...] = ()

    @classmethod
    def from_preference_collator(
        cls, collator: DataCollatorForPreference, extra_groups: tuple[str, ...] = ()
    ) -> IrisDataCollator:
        fields = {
            f.name: getattr(collator, f.name) for f in dataclasses.fields(DataCollatorForPreference)
        }
        return cls(**fields, extra_groups=tuple(extra_groups))

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        response_keys = ["chosen_ids", "rejected_ids"]
        for group in self.extra_groups:
            key = f"{group}_ids"
            response_keys.append(key)
            extra = super().torch_call(
                [
                    {"prompt_ids": e["prompt_ids"], "chosen_ids": e[key], "rejected_ids": []}
                    for e in examples
                ]
            )
            batch_size = len(examples)
            for name in ("input_ids", "attention_mask", "completion_mask"):
                pad_value = self.pad_token_id if name == "input_ids" else 0
                output[name] = _cat_right_padded(output[name], extra[name][:batch_size], pad_value)
        if "iris_row" in examples[0]:
            output[ROW_INDEX] = torch.tensor([e["iris_row"] for e in examples], dtype=torch.long)
        else:
            output[ROW_INDEX] = torch.arange(len(examples), dtype=torch.long)
        limit = self.max_length
        output[TRUNCATED] = torch.tensor(
            [
                limit is not None and len(e["prompt_ids"]) + len(e[key]) > limit
                for key in response_keys
                for e in examples
            ],
            dtype=torch.bool,
        )
        return output


def _cat_right_padded(a: torch.Tensor, b: torch.Tensor, pad_value: int) -> torch.Tensor:
    width = max(a.size(1), b.size(1))
    a = F.pad(a, (0, width - a.size(1)), value=pad_value)
    b = F.pad(b, (0, width - b.size(1)), value=pad_value)
    return torch.cat([a, b], dim=0)
