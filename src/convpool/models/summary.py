"""What Sequential.summary() prints: a table of the layers with their receptive
fields and jumps, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


from ..layers import OptionalPair, Shape


def _fmt_pair(pair: tuple[int | None, int | None] | None) -> str:
    return "-" if pair is None else f"{pair[0]}x{pair[1]}"


def _fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")"
    )


class _RowKeys(TypedDict):
    name: str
    type: str
    output_shape: Shape
    params: int
    receptive_field: OptionalPair
    jump: OptionalPair
    whole_input: tuple[int | None, int | None] | None


class SummaryRow(_RowKeys, total=False):
    """One layer's row of :class:`SummaryTable` (see there)."""

    #: A functional Model's rows only: the tensors (layer or input names) it reads.
    connected_to: list[str]


@dataclass
class SummaryTable:
    """What :meth:`Sequential.summary` prints, as data.

    Attributes
    ----------
    name : str
        The model's name.
    input_shape : tuple
    rows : list of dict
        One per layer: ``name``, ``type``, ``output_shape``, ``params``,
        ``receptive_field`` and ``jump`` ((h, w) pairs on the input, or None
        when the layer mixes every position, or when the input is not an image).
    total_params : int
    trainable_params : int
        Of those, the ones training updates (BatchNormalization's moving
        statistics are not).
    """

    name: str
    input_shape: Shape
    rows: list[SummaryRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0

    def __str__(self) -> str:
        header: tuple[str, ...] = ("Layer (type)", "Output Shape", "Param #", "Receptive field",
                                   "Jump")
        graph = any("connected_to" in r for r in self.rows)
        if graph:  # a functional Model's, as Keras's
            header += ("Connected to",)
        body = []
        for r in self.rows:
            rf = r["receptive_field"]
            if rf is None and r.get("whole_input") is not None:
                rf_text = f"{_fmt_pair(r['whole_input'])} (all)"
            else:
                rf_text = _fmt_pair(rf)
            cells: tuple[str, ...] = (
                f"{r['name']} ({r['type']})",
                _fmt_shape(r["output_shape"]),
                f"{r['params']:,}",
                rf_text,
                _fmt_pair(r["jump"]),
            )
            if graph:
                cells += (", ".join(r.get("connected_to", [])) or "-",)
            body.append(cells)
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        out = [f'Model: "{self.name}"', f"Input shape: {_fmt_shape(self.input_shape)}", rule,
               line(header), rule.replace("-", "=")]
        out += [line(b) for b in body]
        out += [rule, f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.total_params - self.trainable_params:,}"]
        return "\n".join(out)
