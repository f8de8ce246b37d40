"""The demo workspace: three funnels, six managers, a year of deals, with effects planted to be found.

Planted on purpose (and checked by tests):

- **The slow manager.** Сергей Морозов calls new requests back after about a day instead of about an hour, and
  his request → call conversion is much lower than the others'.
- **The bottleneck.** In "Новые клиенты", preliminary estimate → exact estimate & contract converts far worse
  than any other step: most deals are lost there, mainly for price and timing.

Everything else is noise around stable rates. The same seed and ``now`` give the same workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from voronka.domain.deal import ActivityKind
from voronka.domain.pipeline import ProcessKind
from voronka.errors import InputError
from voronka.service.accounts import add_demo_logins
from voronka.store.bulk import NewActivity, NewDeal, NewMove, write_histories
from voronka.store.workspace import WorkspaceStore

MANAGERS = (
    "Анна Петрова",
    "Иван Смирнов",
    "Ольга Кузнецова",
    "Дмитрий Волков",
    "Мария Соколова",
    "Сергей Морозов",
)
SLOW_MANAGER = "Сергей Морозов"
SOURCES = ("Яндекс.Директ", "Сайт (SEO)", "Рекомендации", "Авито", "Выставка")
SOURCE_WEIGHTS = (0.35, 0.25, 0.15, 0.15, 0.10)
SEGMENTS = ("Частные лица", "Малый бизнес", "Средний бизнес")
SEGMENT_WEIGHTS = (0.5, 0.35, 0.15)
LOST = "Закрыто и не реализовано"
PRODUCTS = ("Кухня", "Шкаф-купе", "Гардеробная", "Прихожая", "Офисная мебель", "Детская")
SURNAMES = (
    "Иванов",
    "Кузнецова",
    "Попов",
    "Васильева",
    "Новиков",
    "Фёдорова",
    "Морозов",
    "Волкова",
    "Лебедев",
    "Козлова",
    "Егоров",
    "Павлова",
    "Соловьёв",
    "Орлова",
    "Андреев",
    "Макарова",
    "Никитин",
    "Захарова",
)
COMPANIES = (
    "Вектор",
    "Горизонт",
    "Альфа-Строй",
    "Северный ветер",
    "Технопарк",
    "Уют",
    "Лидер",
    "Меридиан",
    "Гранит",
    "Созвездие",
    "Прогресс",
    "Орион",
)
INITIALS = "АБВГДЕЗИКЛМНОПРСТФЭЮЯ"
NEGLECT = 0.025  # per stage visit: the manager stops working the deal and never moves it again


@dataclass(frozen=True)
class _Funnel:
    name: str
    process: ProcessKind
    stages: tuple[str, ...]
    won: str
    sla: tuple[float, ...]
    reasons: tuple[str, ...]
    advance: tuple[float, ...]  # probability of moving on from each open stage
    median_days: tuple[float, ...]  # median time in each open stage
    loss_reasons: tuple[tuple[float, ...], ...]  # per open stage: weights over `reasons`
    share: float
    amount_median: float


NEW_CLIENTS = _Funnel(
    name="Новые клиенты",
    process=ProcessKind.NEW_CLIENTS,
    stages=("Заявка", "Звонок и квалификация", "Предварительный расчёт", "Точный расчёт и договор"),
    won="Продажа",
    sla=(1, 3, 5, 10),
    reasons=("Не дозвонились", "Нет потребности", "Дорого", "Не устроили сроки", "Выбрали конкурента"),
    advance=(0.88, 0.78, 0.36, 0.70),
    median_days=(0.2, 2.0, 4.0, 7.0),
    loss_reasons=(
        (0.70, 0.25, 0.05, 0, 0),
        (0.2, 0.6, 0.1, 0.05, 0.05),
        (0, 0.1, 0.5, 0.3, 0.1),
        (0, 0.1, 0.3, 0.1, 0.5),
    ),
    share=0.70,
    amount_median=180_000,
)
REPEAT = _Funnel(
    name="Повторные продажи",
    process=ProcessKind.REPEAT_SALES,
    stages=("Контакт с клиентом", "Коммерческое предложение", "Согласование"),
    won="Оплачено",
    sla=(3, 7, 10),
    reasons=("Нет потребности", "Дорого", "Отложили покупку"),
    advance=(0.80, 0.70, 0.80),
    median_days=(2.0, 5.0, 6.0),
    loss_reasons=((0.7, 0.1, 0.2), (0.3, 0.4, 0.3), (0.2, 0.4, 0.4)),
    share=0.20,
    amount_median=90_000,
)
WIN_BACK = _Funnel(
    name="Возврат клиентов",
    process=ProcessKind.WIN_BACK,
    stages=("Напоминание", "Интерес", "Предложение"),
    won="Вернулся",
    sla=(3, 7, 10),
    reasons=("Не дозвонились", "Нет потребности", "Выбрали конкурента"),
    advance=(0.60, 0.55, 0.60),
    median_days=(3.0, 5.0, 7.0),
    loss_reasons=((0.6, 0.3, 0.1), (0.1, 0.5, 0.4), (0, 0.4, 0.6)),
    share=0.10,
    amount_median=120_000,
)
FUNNELS = (NEW_CLIENTS, REPEAT, WIN_BACK)


def build_demo(
    store: WorkspaceStore, *, seed: int = 7, n_deals: int = 3000, now: datetime, replace: bool = False
) -> str:
    """Fill ``store`` with the demo workspace; refuses a non-empty workspace unless ``replace``."""
    if n_deals < 10:
        raise InputError(f"--deals {n_deals}: the demo needs at least 10 deals to show anything.")
    if not store.is_empty():
        if not replace:
            raise InputError(
                f"The workspace at {store.url} already has pipelines; the demo needs an empty one. "
                f"Use another --db, or --replace to delete everything in it first."
            )
        store.clear()
    rng = np.random.default_rng(seed)
    for m in MANAGERS:
        store.add_user(m, role="manager")
    store.add_user("Елена Руководитель", role="head")
    add_demo_logins(store, MANAGERS, "Елена Руководитель")
    items: list[NewDeal] = []
    for funnel in FUNNELS:
        store.create_pipeline(
            funnel.name,
            stages=list(funnel.stages),
            won=funnel.won,
            lost=[LOST],
            reasons=list(funnel.reasons),
            process=funnel.process,
            sla_days=list(funnel.sla),
            lang="ru",
        )
        count = int(round(n_deals * funnel.share))
        items += [_deal(rng, funnel, i, now) for i in range(count)]
    write_histories(store, items)
    moves = sum(len(d.moves) for d in items)
    return f"{len(FUNNELS)} pipelines, {len(MANAGERS)} managers, {len(items)} deals, {moves} stage moves"


def _deal(rng: np.random.Generator, f: _Funnel, i: int, now: datetime) -> NewDeal:
    # More requests lately: entry times lean towards `now` over the year.
    age_days = 365 * (1 - rng.power(1.25))
    created = (now - timedelta(days=float(age_days))).replace(microsecond=0)
    owner = MANAGERS[int(rng.integers(len(MANAGERS)))]
    source = SOURCES[int(rng.choice(len(SOURCES), p=SOURCE_WEIGHTS))]
    segment = SEGMENTS[int(rng.choice(len(SEGMENTS), p=SEGMENT_WEIGHTS))]
    scale = {"Частные лица": 0.6, "Малый бизнес": 1.0, "Средний бизнес": 2.5}[segment]
    amount = Decimal(int(round(f.amount_median * scale * rng.lognormal(0, 0.5), -3)))
    moves, acts = _walk(rng, f, owner, source, created, now)
    if segment == "Частные лица":
        client = f"{SURNAMES[int(rng.integers(len(SURNAMES)))]} {INITIALS[int(rng.integers(len(INITIALS)))]}."
    else:
        client = f"ООО «{COMPANIES[int(rng.integers(len(COMPANIES)))]}»"
    product = PRODUCTS[int(rng.integers(len(PRODUCTS)))]
    return NewDeal(
        pipeline=f.name,
        title=f"{product} — {client}",
        moves=moves,
        owner=owner,
        amount=amount,
        source=source,
        segment=segment,
        activities=acts,
        external_id=f"demo-{f.process.value}-{i + 1}",
    )


def _walk(
    rng: np.random.Generator, f: _Funnel, owner: str, source: str, created: datetime, now: datetime
) -> tuple[list[NewMove], list[NewActivity]]:
    """One deal's path: advance, skip, step back, lose with a reason, sometimes re-open; stop at `now`."""
    moves = [NewMove(f.stages[0], created, by=owner)]
    acts: list[NewActivity] = []
    t = created
    k = 0
    n = len(f.stages)
    if f is NEW_CLIENTS:
        slow = owner == SLOW_MANAGER
        delay = timedelta(hours=float(rng.lognormal(np.log(26 if slow else 1.2), 0.6)))
        if created + delay < now:
            acts.append(NewActivity(ActivityKind.CALL, created + delay, done=True, by=owner, note="Первый звонок"))
    reopened = False
    neglected = False
    while True:
        if rng.random() < NEGLECT:
            neglected = True
            break
        p = f.advance[k]
        if f is NEW_CLIENTS and k == 0 and owner == SLOW_MANAGER:
            p = 0.55  # late call-backs: the client has gone cold or found someone else
        if source == "Рекомендации":
            p = min(0.97, p + 0.05)
        wait = timedelta(days=float(rng.lognormal(np.log(f.median_days[k]), 0.8)))
        if t + wait >= now:
            break
        t += wait
        if rng.random() < p:
            if k > 0 and rng.random() < 0.06:  # a step back: the client asks to recalculate
                k -= 1
                moves.append(NewMove(f.stages[k], t, by=owner, comment="Вернули на доработку"))
                continue
            step = 2 if k + 2 < n and rng.random() < 0.07 else 1  # a skip
            k += step
            if k >= n:
                moves.append(NewMove(f.won, t, by=owner))
                break
            moves.append(NewMove(f.stages[k], t, by=owner))
            if k >= 2:
                acts.append(NewActivity(ActivityKind.MEETING, t, done=True, by=owner))
            continue
        reason = f.reasons[int(rng.choice(len(f.reasons), p=np.array(f.loss_reasons[k]) / sum(f.loss_reasons[k])))]
        moves.append(NewMove(LOST, t, reason=reason, by=owner))
        back = timedelta(days=float(rng.uniform(10, 40)))
        if reopened or rng.random() > 0.06 or t + back >= now:
            break
        reopened = True  # work with refusals: the deal comes back where it was lost
        t += back
        moves.append(NewMove(f.stages[k], t, by=owner, comment="Клиент вернулся"))
    if moves[-1].stage in f.stages and not neglected and rng.random() < 0.6:
        due = now + timedelta(days=float(rng.uniform(0.5, 7)))
        acts.append(
            NewActivity(ActivityKind.TASK, max(t, now - timedelta(hours=2)), due_at=due, by=owner, note="Связаться")
        )
    return moves, acts
