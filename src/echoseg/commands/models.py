"""`echoseg models [--json]`: the model presets with parameter counts and GFLOPs at 256x256."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echoseg models`."""
    parser.add_argument("--json", action="store_true",
                        help='print {preset: {"params": int, "gflops": float}} as JSON')


def run(args: argparse.Namespace) -> int:
    """Print the presets of configs/models/ as a table (or JSON); returns 0."""
    from echoseg.models import list_presets, load_preset, model_stats

    configs = {name: load_preset(name) for name in list_presets()}
    rows = {name: (cfg, model_stats(cfg)) for name, cfg in configs.items()}
    if args.json:
        from echoseg.evaluation.writers import json_text

        print(json_text({name: stats for name, (_, stats) in rows.items()}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Model presets (1x1x256x256 input; GFLOPs = 2 x multiply-accumulates)")
    for col in ("preset", "encoder", "decoder", "norm/act", "down/up", "DS", "params", "GFLOPs"):
        table.add_column(col, justify="right" if col in ("params", "GFLOPs") else "left",
                         no_wrap=True)
    for name, (cfg, stats) in rows.items():
        act = f"leaky_relu({cfg.negative_slope:g})" if cfg.act == "leaky_relu" else cfg.act
        table.add_row(
            name, ",".join(map(str, cfg.encoder)), ",".join(map(str, cfg.decoder)),
            f"{cfg.norm}/{act}", f"{cfg.down}/{cfg.up}", "yes" if cfg.deep_supervision else "no",
            f"{stats['params']:,}", f"{stats['gflops']:.2f}",
        )
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console.width = max(console.width, 140)
    console.print(table)
    return 0
