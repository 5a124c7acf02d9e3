"""The quantizers' padded per-channel tables in a checkpoint: their distinct rows and a row number per channel."""

from __future__ import annotations

import torch
from torch import Tensor, nn

# State-dict keys of a padded table `name` in its compact form (see CompactTablesState).
ROWS_SUFFIX = "_rows"
ROW_OF_SUFFIX = "_row_of"
_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def pack_table_rows(table: Tensor) -> tuple[Tensor, Tensor]:
    """A padded per-channel table [C, W] as (its distinct rows cut after their padding [R, K], the row of each
    channel [C] uint8, int32 past 256 rows); unpacked, equal bit for bit (-0.0 and NaN too: compared as integers).

    Every channel of one bit-width holds the same row and rows repeat their last meaningful value up to W (levels
    their top level, thresholds +inf), so R is the number of widths in the layer and K the longest row's length.
    """
    t = table.detach()
    if t.dim() != 2 or t.shape[1] == 0:
        raise ValueError(f"a padded table is [C, W] with W >= 1, got shape {tuple(t.shape)}")
    bits = t.contiguous().view(_SAME_SIZE_INT[t.element_size()])
    # Keep K columns: from column K-1 on, every row repeats its column K-1.
    differs = (bits[:, 1:] != bits[:, :-1]).any(dim=0).nonzero()
    keep = int(differs[-1].item()) + 2 if differs.numel() else 1
    distinct, row_of = torch.unique(bits[:, :keep], dim=0, return_inverse=True)
    # uint8 indices in practice (R is a handful): on a 8,192-channel input the row indices would outweigh the rows
    return distinct.view(t.dtype), row_of.to(torch.uint8 if distinct.shape[0] <= 256 else torch.int32)


def unpack_table_rows(rows: Tensor, row_of: Tensor, channels: int, width: int) -> Tensor:
    """The inverse of pack_table_rows; raises ValueError for arrays that do not make a [channels, width] table."""
    if rows.dim() != 2 or not 1 <= rows.shape[1] <= width or rows.shape[0] < 1:
        raise ValueError(f"rows must be [R >= 1, 1..{width}], got shape {tuple(rows.shape)}")
    if tuple(row_of.shape) != (channels,) or row_of.is_floating_point() or row_of.is_complex():
        raise ValueError(f"row_of must be {channels} integers, got {row_of.dtype} of shape {tuple(row_of.shape)}")
    index = row_of.long()
    if bool(((index < 0) | (index >= rows.shape[0])).any()):
        raise ValueError(f"row_of holds an index outside 0..{rows.shape[0] - 1}")
    full = torch.cat([rows, rows[:, -1:].expand(-1, width - rows.shape[1])], dim=1)
    return full.index_select(0, index)


class CompactTablesState(nn.Module):
    """Keeps the padded per-channel tables (buffers named in `compact_tables`) out of the state dict in full.

    They are a function of the scheme: as registered buffers a ResNet-20 checkpoint held 5.7 MB of them next to
    1.1 MB of weights, a VGG-small one 63 MB. The state dict holds `<name>_rows` and `<name>_row_of` instead (a
    few rows per layer), so a state dict alone still restores the quantizer bit for bit. State dicts of the old
    form (the full `<name>` table) load too: they are in users' run folders.
    """

    compact_tables: tuple[str, ...] = ()

    def _save_to_state_dict(self, destination: dict[str, Tensor], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)  # the tables are registered non-persistent
        for name in self.compact_tables:
            rows, row_of = pack_table_rows(getattr(self, name))
            destination[prefix + name + ROWS_SUFFIX] = rows
            destination[prefix + name + ROW_OF_SUFFIX] = row_of

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Tensor],
        prefix: str,
        local_metadata: dict[str, object],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        consumed: set[str] = set()
        for name in self.compact_tables:
            buffer: Tensor = getattr(self, name)
            rows_key, row_of_key, full_key = prefix + name + ROWS_SUFFIX, prefix + name + ROW_OF_SUFFIX, prefix + name
            if rows_key in state_dict or row_of_key in state_dict:
                consumed.update((rows_key, row_of_key))
                absent = [k for k in (rows_key, row_of_key) if k not in state_dict]
                if absent:
                    missing_keys.extend(absent)
                    continue
                try:
                    value = unpack_table_rows(state_dict[rows_key], state_dict[row_of_key], *buffer.shape)
                except ValueError as exc:
                    error_msgs.append(f"{rows_key} / {row_of_key}: {exc}")
                    continue
            elif full_key in state_dict:  # a state dict of the old form
                consumed.add(full_key)
                value = state_dict[full_key]
                if value.shape != buffer.shape:
                    error_msgs.append(f"size mismatch for {full_key}: {tuple(value.shape)} in the state dict, "
                                      f"{tuple(buffer.shape)} in the model")
                    continue
            else:
                if strict:
                    missing_keys.append(rows_key)
                continue
            with torch.no_grad():
                buffer.copy_(value)  # in place: a captured CUDA graph keeps reading this memory
        rest = {k: v for k, v in state_dict.items() if k not in consumed}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
