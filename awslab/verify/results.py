"""What a verify check says: a stable id, PASS / FAIL / WARN / SKIP, the evidence, a fix for a
FAIL, and the AWS Foundational Security Best Practices control where one exists."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"


@dataclass
class Result:
    id: str
    status: str
    detail: str
    hint: str | None = None
    control: str | None = None   # AWS Foundational Security Best Practices control

    def as_dict(self) -> dict:
        return asdict(self)
