"""Ask a bundled model questions, score it on two eigenvalue laws and see where it fails.

    python examples/predict_and_evaluate.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np

import linalgformer as lf


def main(out_dir: Path) -> None:
    model = lf.load("eigenvalues-3x3")  # shipped with the package: no training
    matrix = np.array([[4.0, -7.5, 2.0], [-7.5, 1.0, 6.0], [2.0, 6.0, -3.0]])
    print("model:", model.predict(matrix).ravel(), " numpy:", np.linalg.eigvalsh(matrix)[::-1])
    batch = lf.generate("eigenvalues", dim=3, count=4, seed=1).inputs  # (4, 3, 3)
    print("a batch:", model.predict(batch).shape)
    for law in ("semicircle", "laplace"):
        result = model.evaluate(count=200, distribution=law)
        print(f"{law:10s} accuracy at 5%: {result['accuracy']:.1%}, at 1%: {result['tolerances']['0.01']:.1%}")
    analysis = model.analyze(count=200)
    print(analysis.table())
    print("plot:", analysis.plot(out_dir / "eigenvalues-3x3-analysis.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
