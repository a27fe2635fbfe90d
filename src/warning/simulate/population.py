"""Draw the starting population: households, their members, and each household's income plan.

Incomes are drawn top-down. Each household first gets a per-person income,
log-normal around the NBS median of its urban/rural kind and region and
shifted by its share of labour-capable members. That income is split into
the sources the household has, by the NBS source shares, and each source is
split among the members who earn it. Shocks later act on those member-level
amounts, so a sick or jobless member removes exactly their share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from warning.simulate.params import Parameters
from warning.simulate.regions import Region

# Earning roles: what a member does for a living when no shock interferes.
ROLE_NONE, ROLE_LOCAL, ROLE_MIGRANT, ROLE_SELF, ROLE_FARM = 0, 1, 2, 3, 4
# Age groups of the parameters: 0-5, 6-15, 16-22, 23-49, 50-64, 65+.
AGE_GROUP_COUNT = 6
ELDERLY_AGE = 65
_STANDARD_NORMAL = NormalDist()


@dataclass
class Population:
    """Households and members at the start month, as parallel numpy arrays."""

    # Households.
    household_ids: np.ndarray
    region: np.ndarray
    region_codes: np.ndarray
    township_codes: np.ndarray
    urban: np.ndarray
    members: np.ndarray
    former_poor: np.ndarray
    non_enrolling: np.ndarray
    property_base: np.ndarray
    transfer_base: np.ndarray
    plot_base: np.ndarray
    growth: np.ndarray
    expected_income_per_person: np.ndarray
    # Members.
    person_ids: np.ndarray
    person_household: np.ndarray
    age_months: np.ndarray
    disabled: np.ndarray
    student: np.ndarray
    school_until: np.ndarray
    chronic: np.ndarray
    role: np.ndarray
    base: np.ndarray
    sector: np.ndarray
    formal: np.ndarray
    employee_medical: np.ndarray
    unemployed: np.ndarray
    pension: np.ndarray
    sector_names: tuple[str, ...]

    @property
    def household_count(self) -> int:
        return len(self.household_ids)

    @property
    def person_count(self) -> int:
        return len(self.person_ids)

    def counts_at_start(self) -> dict[str, np.ndarray]:
        """Return the household-table counts: labour-capable, disabled, elderly, children in school."""
        n = self.household_count
        age_years = self.age_months // 12
        labour = (age_years >= 16) & (age_years < ELDERLY_AGE) & ~self.disabled & ~self.student
        return {
            "labour_capable": np.bincount(self.person_household, weights=labour, minlength=n).astype(
                np.int64
            ),
            "disabled": np.bincount(self.person_household, weights=self.disabled, minlength=n).astype(
                np.int64
            ),
            "elderly": np.bincount(
                self.person_household, weights=age_years >= ELDERLY_AGE, minlength=n
            ).astype(np.int64),
            "children_in_school": np.bincount(
                self.person_household, weights=self.student, minlength=n
            ).astype(np.int64),
        }


def hashed_ids(kind: str, seed: int, count: int) -> np.ndarray:
    """Return ids that look like hashed identity numbers: 16 hex digits of SHA-256 of a synthetic identity."""
    ids = np.array(
        [
            hashlib.sha256(f"simulated:{seed}:{kind}:{number}".encode()).hexdigest()[:16]
            for number in range(count)
        ],
        dtype=object,
    )
    if len(set(ids)) != count:
        raise RuntimeError(f"hashed {kind} ids collided for seed {seed}, so use another seed")
    return ids


def _draw_categories(rng: np.random.Generator, probabilities: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Draw one category per row from the probability vector of that row's group."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    draws = rng.random(len(groups))
    rows = cumulative[groups]
    return (draws[:, None] >= rows).sum(axis=1)


def _kind_group(urban: np.ndarray, former_poor: np.ndarray) -> np.ndarray:
    """Return 0 for rural, 1 for urban and 2 for former-poor (which takes precedence)."""
    return np.where(former_poor, 2, np.where(urban, 1, 0))


def draw_population(
    params: Parameters,
    regions: list[Region],
    households: int,
    seed: int,
    start_year: int,
    rural_line_at_start: np.ndarray,
    rng: np.random.Generator,
) -> Population:
    """Draw households and members, their structure, jobs and income plans.

    ``rural_line_at_start`` gives, per region, the rural line of the start year,
    which former-poor incomes are drawn relative to.
    """
    weights = np.array([entry.weight for entry in regions])
    region = rng.choice(len(regions), size=households, p=weights / weights.sum())
    urban_share = np.array([entry.urban_share for entry in regions])
    urban = rng.random(households) < urban_share[region]
    poor_share = np.array([entry.former_poor_share for entry in regions])
    poor_share_urban = params.probability("registrations.former_poor_share_urban")
    former_poor = rng.random(households) < np.where(urban, poor_share_urban, poor_share[region])

    size_probabilities = np.stack(
        [params.distribution(f"households.size_probabilities.{kind}") for kind in ("rural", "urban")]
    )
    members = _draw_categories(rng, size_probabilities, urban.astype(np.int64)) + 1

    persons = _draw_members(params, rng, members, urban, former_poor)
    roles = _draw_roles(params, rng, persons, urban, former_poor)
    income = _draw_income_plan(
        params,
        regions,
        rng,
        region,
        urban,
        former_poor,
        members,
        persons,
        roles,
        start_year,
        rural_line_at_start,
    )

    townships = np.empty(households, dtype=object)
    for position, entry in enumerate(regions):
        for is_urban in (False, True):
            rows = np.flatnonzero((region == position) & (urban == is_urban))
            if rows.size:
                codes = np.array(entry.township_codes(is_urban), dtype=object)
                townships[rows] = codes[rng.integers(0, len(codes), rows.size)]

    non_enrolling_share = np.where(
        former_poor,
        params.probability("insurance.non_enrolling_household_share_former_poor"),
        params.probability("insurance.non_enrolling_household_share"),
    )
    region_codes = np.array([entry.code for entry in regions], dtype=object)[region]
    return Population(
        household_ids=hashed_ids("household", seed, households),
        region=region,
        region_codes=region_codes,
        township_codes=townships,
        urban=urban,
        members=members.astype(np.int64),
        former_poor=former_poor,
        non_enrolling=rng.random(households) < non_enrolling_share,
        property_base=income["property"],
        transfer_base=income["transfers"],
        plot_base=income["plot"],
        growth=income["growth"],
        expected_income_per_person=income["expected_per_person"],
        person_ids=hashed_ids("person", seed, len(persons["household"])),
        person_household=persons["household"],
        age_months=persons["age_months"],
        disabled=persons["disabled"],
        student=persons["student"],
        school_until=persons["school_until"],
        chronic=persons["chronic"],
        role=roles["role"],
        base=income["base"],
        sector=roles["sector"],
        formal=roles["formal"],
        employee_medical=roles["employee_medical"],
        unemployed=roles["unemployed"],
        pension=income["pension"],
        sector_names=roles["sector_names"],
    )


def _draw_members(
    params: Parameters,
    rng: np.random.Generator,
    members: np.ndarray,
    urban: np.ndarray,
    former_poor: np.ndarray,
) -> dict[str, np.ndarray]:
    households = len(members)
    household = np.repeat(np.arange(households), members)
    first = np.concatenate([[0], np.cumsum(members)[:-1]])
    slot = np.arange(len(household)) - first[household]
    kind = _kind_group(urban, former_poor)[household]

    kinds = ("rural", "urban", "former_poor")
    member_groups = np.stack(
        [params.distribution(f"households.member_age_probabilities.{k}", AGE_GROUP_COUNT) for k in kinds]
    )
    head_groups = np.stack([params.distribution(f"households.head_age_probabilities.{k}", 3) for k in kinds])
    group = _draw_categories(rng, member_groups, kind)
    head = slot == 0
    group[head] = 3 + _draw_categories(rng, head_groups, kind[head])

    bounds = np.array(params.get("households.age_groups"), dtype=np.int64)
    if bounds.shape != (AGE_GROUP_COUNT, 2):
        raise ValueError(
            f"simulator parameters {params.source}: households.age_groups must be 6 [low, high] pairs"
        )
    low, high = bounds[group, 0], bounds[group, 1]
    age_years = low + (rng.random(len(group)) * (high - low + 1)).astype(np.int64)
    age_months = age_years * 12 + rng.integers(0, 12, len(group))

    disability = params.vector("households.disability_by_age_group", AGE_GROUP_COUNT)
    disability_multiplier = np.where(
        former_poor[household], params.number("households.former_poor_disability_multiplier", 0.0), 1.0
    )
    disabled = rng.random(len(group)) < np.minimum(disability[group] * disability_multiplier, 1.0)
    chronic = (
        rng.random(len(group)) < params.vector("households.chronic_by_age_group", AGE_GROUP_COUNT)[group]
    )

    senior_high = params.probability("households.senior_high_share")
    college = params.probability("households.college_share")
    plan = rng.random(len(group))
    school_until = np.where(plan < senior_high * college, 22, np.where(plan < senior_high, 18, 15))
    # Members already past 15 keep the plan only if they are in school now.
    in_senior_high = (age_years >= 16) & (age_years <= 18) & (school_until >= 18)
    in_college = (age_years >= 19) & (age_years <= 22) & (school_until >= 22)
    student = ((age_years >= 6) & (age_years <= 15)) | in_senior_high | in_college
    school_until = np.where((age_years >= 16) & ~student, 15, school_until)
    return {
        "household": household.astype(np.int64),
        "age_months": age_months.astype(np.int64),
        "disabled": disabled,
        "chronic": chronic,
        "student": student,
        "school_until": school_until.astype(np.int64),
    }


def _draw_roles(
    params: Parameters,
    rng: np.random.Generator,
    persons: dict[str, np.ndarray],
    urban: np.ndarray,
    former_poor: np.ndarray,
) -> dict[str, object]:
    household = persons["household"]
    age_years = persons["age_months"] // 12
    person_urban = urban[household]
    kind_group = _kind_group(urban, former_poor)[household]
    labour = (age_years >= 16) & (age_years < ELDERLY_AGE) & ~persons["disabled"] & ~persons["student"]

    kinds = np.stack(
        [
            params.distribution(f"employment.kind_probabilities.{k}", 6)
            for k in ("rural", "urban", "former_poor")
        ]
    )
    kind = _draw_categories(rng, kinds, kind_group)
    # Kinds 0-3 are earning roles 1-4. Kind 4 is unemployed and 5 out of the labour force.
    role = np.where(kind <= 3, kind + 1, ROLE_NONE)
    unemployed = labour & (kind == 4)
    seeking_migrant = ~person_urban & (
        rng.random(len(kind)) < params.probability("employment.unemployed_migrant_share_rural")
    )
    role = np.where(unemployed, np.where(seeking_migrant, ROLE_MIGRANT, ROLE_LOCAL), role)
    role = np.where(labour, role, ROLE_NONE)
    elderly_farmer = (
        ~person_urban
        & (age_years >= ELDERLY_AGE)
        & (age_years <= params.integer("households.elderly_farming_max_age"))
        & ~persons["disabled"]
        & (rng.random(len(kind)) < params.probability("households.elderly_farming_share"))
    )
    role = np.where(elderly_farmer, ROLE_FARM, role)

    sectors = params.mapping("employment.sectors")
    wage_sectors = list(sectors)
    self_sectors = [str(name) for name in params.get("employment.self_employed_sectors")]
    farm_sector = str(params.get("employment.farming_sector"))
    sector_names = tuple(wage_sectors + self_sectors + [farm_sector])
    shares = np.stack(
        [np.array([float(sectors[name][f"share_{k}"]) for name in wage_sectors]) for k in ("rural", "urban")]
    )
    shares = shares / shares.sum(axis=1, keepdims=True)
    wage_role = (role == ROLE_LOCAL) | (role == ROLE_MIGRANT)
    urban_local = person_urban & (role == ROLE_LOCAL)
    sector = np.full(len(role), -1, dtype=np.int64)
    sector[wage_role] = _draw_categories(rng, shares, urban_local[wage_role].astype(np.int64))
    self_employed = role == ROLE_SELF
    sector[self_employed] = len(wage_sectors) + rng.integers(0, len(self_sectors), int(self_employed.sum()))
    sector[role == ROLE_FARM] = len(sector_names) - 1

    formal_share = np.where(
        urban_local,
        params.probability("employment.formal_share.urban_local"),
        np.where(
            role == ROLE_LOCAL,
            params.probability("employment.formal_share.rural_local"),
            params.probability("employment.formal_share.migrant"),
        ),
    )
    formal = wage_role & (rng.random(len(role)) < formal_share)
    # Urban retirees from formal jobs keep employee medical insurance.
    retired_formal = (
        person_urban
        & (age_years >= ELDERLY_AGE)
        & (rng.random(len(role)) < params.probability("insurance.urban_elderly_employee_share"))
    )
    return {
        "role": role.astype(np.int64),
        "sector": sector,
        "formal": formal,
        "employee_medical": formal | retired_formal,
        "unemployed": unemployed,
        "sector_names": sector_names,
    }


def _draw_income_plan(
    params: Parameters,
    regions: list[Region],
    rng: np.random.Generator,
    region: np.ndarray,
    urban: np.ndarray,
    former_poor: np.ndarray,
    members: np.ndarray,
    persons: dict[str, np.ndarray],
    roles: dict[str, object],
    start_year: int,
    rural_line_at_start: np.ndarray,
) -> dict[str, np.ndarray]:
    households = len(members)
    household = persons["household"]
    role = np.asarray(roles["role"])
    sector = np.asarray(roles["sector"])
    age_years = persons["age_months"] // 12
    labour = (age_years >= 16) & (age_years < ELDERLY_AGE) & ~persons["disabled"] & ~persons["student"]
    labour_share = np.bincount(household, weights=labour, minlength=households) / members

    # Per-person income target of the start year.
    base_year = params.integer("income.base_year")
    target = np.empty(households)
    growth = np.empty(households)
    effect = params.number("income.labour_effect")
    registered_tail = params.probability("income.registered_tail_share")
    poor_share = np.array([entry.former_poor_share for entry in regions])
    poor_share_urban = params.probability("registrations.former_poor_share_urban")
    growth_sd = params.number("income.household_growth_sd", 0.0)
    for is_urban, kind in ((False, "rural"), (True, "urban")):
        rows = urban == is_urban
        median = params.number(f"income.{kind}.median", 1.0)
        sigma = params.number(f"income.{kind}.sigma", 0.01)
        annual_growth = params.number(f"income.{kind}.annual_growth", -0.5, 1.0)
        multiplier = np.array([getattr(entry, f"{kind}_income") for entry in regions])[region[rows]]
        shift = effect * (labour_share[rows] - labour_share[rows].mean())
        # The labour shift adds spread, so the residual is narrowed to keep the total sigma.
        residual = np.sqrt(max(sigma**2 - shift.var(), 0.1**2))
        median_start = median / (1.0 + annual_growth) ** (base_year - start_year)
        # Registration took most of the poorest tail of each region. The other
        # households are drawn from the distribution above that part of the tail.
        region_share = poor_share_urban if is_urban else poor_share[region[rows]]
        tail = np.where(former_poor[rows], 0.0, registered_tail * region_share)
        uniform = tail + (1.0 - tail) * rng.random(rows.sum())
        standard_normal = np.array(
            [_STANDARD_NORMAL.inv_cdf(min(max(value, 1e-12), 1 - 1e-12)) for value in uniform]
        )
        target[rows] = median_start * multiplier * np.exp(shift + residual * standard_normal)
        growth[rows] = np.log1p(annual_growth)

    poor = former_poor
    ratio = params.number("income.former_poor.median_line_ratio", 0.0)
    poor_sigma = params.number("income.former_poor.sigma", 0.0)
    poor_shift = effect * (labour_share[poor] - labour_share[poor].mean()) if poor.any() else 0.0
    target[poor] = (
        rural_line_at_start[region[poor]]
        * ratio
        * np.exp(poor_shift + poor_sigma * rng.standard_normal(poor.sum()))
    )
    growth[poor] += params.number("income.former_poor.growth_shift")
    growth += params.number("income.shock_drag") + growth_sd * rng.standard_normal(households)

    # Source counts per household: who can earn each source.
    sectors = params.mapping("employment.sectors")
    wage_multiplier = np.array([float(sectors[name]["wage"]) for name in sectors])
    person_weight = np.exp(params.number("income.person_wage_sigma", 0.0) * rng.standard_normal(len(role)))
    wage_role = (role == ROLE_LOCAL) | (role == ROLE_MIGRANT)
    person_weight = np.where(
        wage_role,
        person_weight
        * np.where(role == ROLE_MIGRANT, params.number("income.migrant_wage_ratio", 0.0), 1.0)
        * wage_multiplier[np.clip(sector, 0, len(wage_multiplier) - 1)],
        person_weight,
    )
    elderly = age_years >= ELDERLY_AGE
    plot = ~urban & (rng.random(households) < params.probability("income.family_plot_share"))
    plot_weight = params.number("income.family_plot_weight", 0.0)
    counts = {
        "wage": np.bincount(household, weights=np.where(wage_role, person_weight, 0.0), minlength=households),
        "business": np.bincount(household, weights=role == ROLE_SELF, minlength=households),
        "farming": np.bincount(household, weights=role == ROLE_FARM, minlength=households)
        + plot * plot_weight,
        "property": np.ones(households),
        "transfers": np.ones(households),
        "pensions": np.bincount(household, weights=elderly, minlength=households),
    }
    share_sigma = params.number("income.share_sigma", 0.0)
    weights = {}
    for source, count in counts.items():
        weight = np.zeros(households)
        for is_urban, kind in ((False, "rural"), (True, "urban")):
            rows = urban == is_urban
            share = params.number(f"income.source_shares.{kind}.{source}", 0.0)
            mean_count = count[rows].mean() if rows.any() else 0.0
            if mean_count > 0:
                weight[rows] = share * count[rows] / mean_count
        weights[source] = weight * np.exp(share_sigma * rng.standard_normal(households))
    total_weight = sum(weights.values())
    yearly = {source: target * members * weight / total_weight for source, weight in weights.items()}

    # Split each source among the members who earn it, as monthly amounts.
    def per_member(source: str, mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
        household_weight = np.bincount(household, weights=np.where(mask, weight, 0.0), minlength=households)
        if source == "farming":
            household_weight = household_weight + plot * plot_weight
        safe = np.where(household_weight > 0, household_weight, 1.0)
        return np.where(mask, yearly[source][household] * weight / safe[household] / 12.0, 0.0)

    base = (
        per_member("wage", wage_role, person_weight)
        + per_member("business", role == ROLE_SELF, np.ones(len(role)))
        + per_member("farming", role == ROLE_FARM, np.ones(len(role)))
    )
    pension = per_member("pensions", elderly, np.ones(len(role)))
    farm_weight = np.bincount(household, weights=role == ROLE_FARM, minlength=households) + plot * plot_weight
    plot_base = np.where(
        farm_weight > 0, yearly["farming"] * plot * plot_weight / np.maximum(farm_weight, 1e-9), 0.0
    )

    jobless_wages = np.bincount(
        household, weights=np.where(roles["unemployed"], base * 12.0, 0.0), minlength=households
    )
    expected = (target * members - jobless_wages) / members
    return {
        "base": base,
        "pension": pension,
        "property": yearly["property"] / 12.0,
        "transfers": yearly["transfers"] / 12.0,
        "plot": plot_base / 12.0,
        "growth": growth,
        "expected_per_person": expected,
    }
