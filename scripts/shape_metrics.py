"""The shape of the code, measured from the AST (issue 22): config-flag tests in models/, the
longest function, the length of training.py.

A config-flag test is an ``if`` statement, conditional expression or comprehension filter whose
condition reads a config field (``cfg.X``, ``self.cfg.X``, ``config.X``, ``self.config.X``) or one of
the model's mode flags kept beside it (``self.numbers_out``, ``self.num_id``, ``self.restricted``).

    python scripts/shape_metrics.py [SRC]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CONFIG_NAMES = {"cfg", "config", "model_cfg"}
MODE_FLAGS: set[str] = set()  # the mode flags the model keeps beside its config (see --modes)


def reads_config(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            base = sub.value
            if isinstance(base, ast.Name) and base.id in CONFIG_NAMES:
                return True
            if isinstance(base, ast.Attribute) and base.attr in CONFIG_NAMES:
                return True
            if isinstance(base, ast.Name) and base.id == "self" and sub.attr in MODE_FLAGS:
                return True
    return False


def flag_tests(tree: ast.AST) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)) and reads_config(node.test):
            count += 1
        elif isinstance(node, ast.comprehension):
            count += sum(reads_config(cond) for cond in node.ifs)
    return count


def functions(tree: ast.AST, where: str):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.end_lineno - node.lineno + 1, f"{where}:{node.lineno} {node.name}"


def main(src: Path) -> None:
    files = sorted(src.rglob("*.py"))
    trees = {path: ast.parse(path.read_text()) for path in files}
    models = sum(flag_tests(tree) for path, tree in trees.items() if "models" in path.parts)
    longest = sorted((f for path, tree in trees.items() for f in functions(tree, str(path.relative_to(src)))),
                     reverse=True)[:5]
    training = src / "training.py"
    print(f"config-flag tests in models/: {models}")
    for path, tree in trees.items():
        if "models" in path.parts and flag_tests(tree):
            print(f"  {path.relative_to(src)}: {flag_tests(tree)}")
    print("longest functions: " + "; ".join(f"{n} lines {name}" for n, name in longest))
    print(f"training.py: {len(training.read_text().splitlines())} lines")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("src/linalgformer"))
