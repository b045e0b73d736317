"""Models outside the zoo for judging the tile-size pass on whole models it never saw.

Built like the zoo (:mod:`mlsysgym.experiments.make_zoo`): ``transformers`` model classes from
a config with random weights (no download), exported to graph-only ONNX, batch 1. None of
them is in the zoo, and none of their shapes was measured for training (training shapes come
from the zoo only). Run ``python -m mlsysgym.experiments.tiling_models --out DIR`` to rebuild;
the repository keeps them in ``benchmarks/data/tiling_models/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mlsysgym.experiments.make_zoo import IDS_128, IMAGE_224, HfSpec, build

__all__ = ["HELD_OUT_MODELS", "build_all"]

HELD_OUT_MODELS: tuple[HfSpec, ...] = (
    HfSpec("llama_decoder_d1024", "LlamaModel", "LlamaConfig",
           {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
            "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": 32000,
            "max_position_embeddings": 2048, "use_cache": False},
           IDS_128, "Llama-style decoder (8 layers, d=1024, GQA 16/4 heads, SwiGLU 2816), "
           "sequence 128"),
    HfSpec("vit_s16", "ViTModel", "ViTConfig",
           {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
            "intermediate_size": 1536, "add_pooling_layer": False},
           IMAGE_224, "ViT-S/16 encoder (12 layers, d=384, 6 heads), 224x224"),
    HfSpec("resnet34", "ResNetForImageClassification", "ResNetConfig",
           {"depths": [3, 4, 6, 3], "layer_type": "basic", "hidden_sizes": [64, 128, 256, 512],
            "num_labels": 1000}, IMAGE_224, "ResNet-34 (basic blocks 3-4-6-3), 224x224"),
    HfSpec("mobilenet_v1", "MobileNetV1ForImageClassification", "MobileNetV1Config",
           {"num_labels": 1000}, IMAGE_224, "MobileNetV1 1.0 (depthwise separable), 224x224"),
    HfSpec("bart_small", "BartModel", "BartConfig",
           {"d_model": 512, "encoder_layers": 6, "decoder_layers": 6,
            "encoder_attention_heads": 8, "decoder_attention_heads": 8,
            "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "vocab_size": 32000,
            "use_cache": False},
           {"input_ids": ((1, 128), "ids"), "decoder_input_ids": ((1, 128), "ids")},
           "BART-style encoder-decoder (6+6 layers, d=512, FFN 2048), 128 tokens each side"),
    HfSpec("opt_350m_d1024", "OPTModel", "OPTConfig",
           {"hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 6,
            "num_attention_heads": 16, "word_embed_proj_dim": 1024, "use_cache": False},
           IDS_128, "OPT-style decoder (6 layers of OPT-350m's d=1024, FFN 4096), sequence 128"),
)


def build_all(out: Path, names: Sequence[str] = ()) -> list[str]:
    """Build the held-out models (all, or ``names``) into ``out``; returns the names built."""
    done = []
    for spec in HELD_OUT_MODELS:
        if names and spec.name not in names:
            continue
        build(spec, out)
        done.append(spec.name)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: build the held-out models."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--out", type=Path, default=Path("results/tiling_models"))
    a = ap.parse_args(argv)
    for name in build_all(a.out, a.names):
        print(f"built {a.out / name}.onnx")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
