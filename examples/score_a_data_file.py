"""Write a test set in the reference code's export format, then score a bundled model on it.

    python examples/score_a_data_file.py [OUT_DIR]

The reference code exports ``N|INPUT<TAB>OUTPUT`` lines; `evaluate --data` and
``model.evaluate(data=...)`` read them, and our own ``generate`` files, alike.
"""

import sys
from pathlib import Path

import linalgformer as lf


def main(out_dir: Path) -> None:
    examples = lf.generate("transpose", dim=3, count=300, encoding="P1000", seed=7)
    path = out_dir / "transpose-3x3.reference.txt"
    lines = (f"{i}|{x}\t{y}" for i, (x, y) in enumerate(zip(examples.input_tokens, examples.output_tokens)))
    path.write_text("\n".join(lines) + "\n")
    model = lf.load("transpose-3x3")
    result = model.evaluate(data=path, save_predictions=out_dir / "predictions.jsonl")
    print(f"{len(examples)} examples from {path.name}: accuracy at 5% {result['accuracy']:.1%}, "
          f"exact {result['exact']:.1%}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
