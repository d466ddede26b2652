"""``import perdure`` stays light: pydantic and httpx (with what httpx imports) load only when
used, and values still round-trip once they do."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_import_perdure_loads_neither_pydantic_nor_httpx() -> None:
    loaded = _run(
        """
        import sys
        import perdure
        print(sorted(m for m in ("pydantic", "httpx", "rich", "click") if m in sys.modules))
        """
    )
    assert loaded == "[]"


def test_client_and_typed_values_load_what_they_need() -> None:
    out = _run(
        """
        import dataclasses, sys
        import perdure
        from perdure import serde

        @dataclasses.dataclass
        class Point:
            x: int

        assert serde.decode_as(serde.dumps(Point(1)), Point) == Point(1)
        assert "pydantic" in sys.modules
        import pydantic

        class M(pydantic.BaseModel):
            y: str

        assert serde.loads(serde.dumps(M(y="a"))) == {"y": "a"}
        assert serde.decode_as('{"y": "b"}', M) == M(y="b")
        print(perdure.Client.__name__, "httpx" in sys.modules)
        """
    )
    assert out == "Client True"
