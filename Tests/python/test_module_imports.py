"""Self-test of scripts/check-module-imports: it passes on this repository and names every forbidden arrow.

A copy of the repository's Sources and Package.swift is changed in one place at a time (a store that
imports the playbooks, a service that imports the store, an impure core, a target dependency that
points away from the core), and the check must fail naming that file and line.
"""

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "scripts" / "check-module-imports"


def run(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(repo)], capture_output=True, text=True)


class ModuleImportsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="muster-imports-"))
        shutil.copytree(REPO / "Sources", self.tmp / "Sources")
        shutil.copy(REPO / "Package.swift", self.tmp / "Package.swift")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def add_import(self, relative: str, module: str) -> None:
        path = self.tmp / relative
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("import Foundation\n", f"import Foundation\nimport {module}\n", 1), encoding="utf-8")

    def test_the_repository_is_clean(self):
        result = run(REPO)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("every arrow points towards MusterCore", result.stdout)

    def test_forbidden_imports_are_named(self):
        cases = [
            ("Sources/MusterStore/Store.swift", "MusterPlaybooks", "MusterStore must not import MusterPlaybooks"),
            ("Sources/MusterHTTP/Server.swift", "MusterStore", "MusterHTTP must not import MusterStore"),
            ("Sources/MusterCore/Playbook/Catalog.swift", "Crypto", "MusterCore is pure and must not import Crypto"),
            ("Sources/MusterNotify/Message.swift", "MusterRuntime", "MusterNotify must not import MusterRuntime"),
        ]
        for relative, module, message in cases:
            with self.subTest(relative=relative, module=module):
                self.tearDown()
                self.setUp()
                self.add_import(relative, module)
                result = run(self.tmp)
                self.assertEqual(result.returncode, 1, result.stdout)
                self.assertIn(f"{relative}:", result.stdout)
                self.assertIn(message, result.stdout)

    def test_a_target_dependency_away_from_the_core_is_named(self):
        package = self.tmp / "Package.swift"
        text = package.read_text(encoding="utf-8")
        self.assertIn('"MusterCore", "MusterAudit",\n', text)
        package.write_text(text.replace('"MusterCore", "MusterAudit",\n', '"MusterCore", "MusterAudit", "MusterPlaybooks",\n', 1), encoding="utf-8")
        result = run(self.tmp)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("Package.swift: target MusterStore must not depend on MusterPlaybooks", result.stdout)


if __name__ == "__main__":
    unittest.main()
