"""What the fuzz suite tried and found, counted across a session: cases per test, and each
kind of finding (a traceback, an INTERNAL or UNKNOWN status, a half-written run, a read or a
write outside GUILD_HOME and the run's dir) as a set of distinct descriptions, so that
hypothesis replaying a failing example while it shrinks counts it once."""

import collections
import dataclasses

KINDS = ("tracebacks", "internal", "half_written", "escapes", "daemon_down")


@dataclasses.dataclass
class Figures:
    cases: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    findings: dict = dataclasses.field(default_factory=lambda: {k: set() for k in KINDS})

    def tried(self, test):
        self.cases[test] += 1

    def found(self, kind, what):
        """Records a finding and returns its description, for the assertion that fails the test."""
        text = what if len(what) <= 300 else what[:300] + "..."
        self.findings[kind].add(text)
        return text

    def as_dict(self):
        return {
            "cases": dict(self.cases),
            "cases_total": sum(self.cases.values()),
            **{k: len(v) for k, v in self.findings.items()},
            "examples": {k: sorted(v)[:10] for k, v in self.findings.items() if v},
        }


FIGURES = Figures()
