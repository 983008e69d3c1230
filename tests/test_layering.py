"""Layering is one-way (STYLE.md): read from every module's imports, including those inside
functions.

core < engagement < polls < rewards, analytics < integrity: a module imports only its own
layer and the ones below.
`config` (wiring) may import anything and nothing imports it, so `core` imports neither an app
nor `config`. A service never imports a tasks module: the tasks call the services, and services
queue tasks by name (core.enqueue). A new app must be given its place here.
"""

import ast
from pathlib import Path

from tests.conftest import ROOT

# Apps on one layer are siblings: neither imports the other (README "Architecture").
LAYERS = {"core": 0, "engagement": 1, "polls": 2, "rewards": 3, "analytics": 3, "integrity": 4}
TOP = "config"


def _imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of the file, relative ones made absolute; for
    `from package import name`, both `package` and `package.name` (name may be a module)."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def layering_violations(root: Path) -> list[str]:
    """Every import that runs up the layers, and every import of a tasks module by a service."""
    violations = []
    for app, layer in LAYERS.items():
        for path in sorted((root / app).rglob("*.py")):
            where = path.relative_to(root)
            is_service = "services" in where.parts[:-1] or where.name == "services.py"
            for line, module in _imported_modules(path, root):
                top = module.split(".")[0]
                if top == TOP or LAYERS.get(top, -1) > layer:
                    violations.append(f"{where}:{line} imports {module}: a higher layer")
                elif top != app and LAYERS.get(top) == layer:
                    violations.append(f"{where}:{line} imports {module}: a sibling app")
                if is_service and module.split(".")[-1] == "tasks":
                    violations.append(f"{where}:{line} imports {module}: services import no tasks")
    return sorted(set(violations))


def test_no_module_imports_a_higher_layer_and_no_service_imports_tasks() -> None:
    assert layering_violations(ROOT) == []


def test_every_app_has_its_place_in_the_layers() -> None:
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps == set(LAYERS)


def test_the_check_catches_imports_that_run_up(tmp_path: Path) -> None:
    # given a tree with one import of each forbidden kind (at module level and in functions)
    files = {
        "core/wakeups.py": "def send():\n    from config.celery import app\n",
        "core/models.py": "from engagement.models import User\n",
        "engagement/services/likes.py": "from polls import models\n",
        "polls/services/tally.py": "def queue():\n    from polls.tasks import refresh\n",
        "polls/services/closing.py": "from ..tasks import finalize\n",
        "rewards/services/grants.py": "from rewards import tasks\n",
        "rewards/tasks.py": "from rewards.services.grants import backfill\nimport polls.models\n",
        "analytics/rollups.py": "import engagement.models\nfrom rewards.models import Grant\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    # then each is reported, and the allowed ones (tasks -> services, down a layer) are not
    assert layering_violations(tmp_path) == sorted(
        [
            "core/models.py:1 imports engagement.models: a higher layer",
            "core/models.py:1 imports engagement.models.User: a higher layer",
            "core/wakeups.py:2 imports config.celery: a higher layer",
            "core/wakeups.py:2 imports config.celery.app: a higher layer",
            "engagement/services/likes.py:1 imports polls: a higher layer",
            "engagement/services/likes.py:1 imports polls.models: a higher layer",
            "polls/services/closing.py:1 imports polls.tasks: services import no tasks",
            "polls/services/tally.py:2 imports polls.tasks: services import no tasks",
            "rewards/services/grants.py:1 imports rewards.tasks: services import no tasks",
            "analytics/rollups.py:2 imports rewards.models: a sibling app",
            "analytics/rollups.py:2 imports rewards.models.Grant: a sibling app",
        ]
    )
