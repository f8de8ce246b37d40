"""Stage templates from the seed articles, in English and Russian.

The last stage of every template is the won stage: a template is the path to a sale.
"""

from __future__ import annotations

from dataclasses import dataclass

from voronka.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class PipelineTemplate:
    key: str
    description: str
    stages_en: tuple[str, ...]
    stages_ru: tuple[str, ...]

    def stages(self, lang: str = "en") -> tuple[list[str], str]:
        """Return (open stage names, won stage name) in the language asked for."""
        names = self.stages_ru if lang == "ru" else self.stages_en
        return list(names[:-1]), names[-1]


TEMPLATES: dict[str, PipelineTemplate] = {
    t.key: t
    for t in (
        PipelineTemplate(
            "classic5",
            "The classic five stages (seed 000): awareness, interest, decision, action, retention.",
            ("Awareness", "Interest", "Decision", "Action", "Retention"),
            ("Осведомлённость", "Интерес", "Решение", "Действие", "Удержание"),
        ),
        PipelineTemplate(
            "made-to-order",
            "Made-to-order sales (seed 004): request, call and qualification, preliminary estimate, "
            "exact estimate and contract, sale.",
            ("Request", "Call / qualification", "Preliminary estimate", "Exact estimate & contract", "Sale"),
            (
                "Заявка",
                "Звонок и квалификация",
                "Предварительный расчёт",
                "Точный расчёт и договор",
                "Продажа",
            ),
        ),
        PipelineTemplate(
            "marketing6",
            "The six-stage marketing funnel (seed 002): awareness, interest, consideration, intent, "
            "evaluation, action.",
            ("Awareness", "Interest", "Consideration", "Intent", "Evaluation", "Action"),
            ("Осведомлённость", "Интерес", "Рассмотрение", "Намерение", "Оценка", "Действие"),
        ),
    )
}

DEFAULT_WON = {"en": "Won", "ru": "Успешно реализовано"}
DEFAULT_LOST = {"en": "Lost", "ru": "Закрыто и не реализовано"}


def get_template(key: str) -> PipelineTemplate:
    try:
        return TEMPLATES[key]
    except KeyError:
        names = ", ".join(TEMPLATES)
        raise NotFoundError(f"Unknown template {key!r}. Use one of: {names}.") from None
