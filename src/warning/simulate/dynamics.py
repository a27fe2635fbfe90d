"""Advance the simulated population one month: shocks, jobs, income, claims, assistance and events.

Every step is vectorised over members or households. All random draws come
from one seeded generator in a fixed order, so a seed fixes the run.

Income losses are attributed to cause groups as they happen: a member who is
off sick loses their potential earnings to ``illness``, a jobless member to
``unstable_employment``, a failed business to ``business_failure``, and so on.
A shock's loss counts only while the shock is younger than
``truth.shock_memory_months``, so that a death or disability long ago reads as
a lower base income (``other``), not as the cause of a fall years later.
"""

from __future__ import annotations

import numpy as np

from warning.simulate.params import Parameters
from warning.simulate.population import (
    ELDERLY_AGE,
    ROLE_FARM,
    ROLE_LOCAL,
    ROLE_MIGRANT,
    ROLE_NONE,
    ROLE_SELF,
    Population,
)
from warning.simulate.shocks import ShockSteps
from warning.simulate.state import (
    ACTIVE,
    AGE_GROUP_LOWER_BOUNDS,
    DISABLED,
    KIND_OUT_OF_LABOUR_FORCE,
    KIND_UNEMPLOYED,
    MEDICAL,
    NO_KIND,
    OFF,
    RETIRED,
    UNEMPLOYED,
    UNEMPLOYMENT,
    MonthResult,
    age_group,
    lognormal,
)


class Simulation(ShockSteps):
    """The mutable state of households and members, advanced by :meth:`step`.

    ``standards`` is each household's monthly allowance standard per person,
    shaped ``(households, years)``. ``disaster_risk`` has one multiplier per region.
    """

    def __init__(
        self,
        params: Parameters,
        population: Population,
        region_count: int,
        disaster_risk: np.ndarray,
        standards: np.ndarray,
        start_month_of_year: int,
        rng: np.random.Generator,
    ) -> None:
        self.params = params
        self.pop = population
        self.rng = rng
        self.standards = standards
        self.start_month_of_year = start_month_of_year
        self.region_count = region_count
        self.disaster_risk = disaster_risk
        causes = [str(name) for name in params.get("causes")]
        self.cause = {name: position for position, name in enumerate(causes)}
        for required in (
            "illness",
            "disability",
            "schooling",
            "disaster",
            "accident",
            "business_failure",
            "unstable_employment",
            "lack_of_labour",
            "insurance_gap",
            "other",
        ):
            if required not in self.cause:
                raise ValueError(f"simulator parameters {params.source}: causes must include {required!r}")
        self.cause_count = len(causes)
        self.memory = params.integer("truth.shock_memory_months", 1)
        self._read_parameters()

        p = population
        n_households, n_persons = p.household_count, p.person_count
        self.hh = p.person_household
        self.alive = np.ones(n_persons, dtype=bool)
        self.died = np.zeros(n_persons, dtype=bool)
        self.age_months = p.age_months.copy()
        self.disabled = p.disabled.copy()
        self.chronic = p.chronic.copy()
        self.chronic_new = np.zeros(n_persons, dtype=bool)
        self.chronic_since = np.full(n_persons, -(10**6), dtype=np.int64)
        self.chronic_work = np.ones(n_persons)
        self.role = p.role.copy()
        self.base = p.base.copy()
        self.sector = p.sector.copy()
        self.formal = p.formal.copy()
        self.employee_medical = p.employee_medical.copy()
        self.pension = p.pension.copy()
        # Pension gained at retirement, netted from the earnings lost by retiring.
        self.retirement_pension = np.zeros(n_persons)
        self.pension_lost = np.zeros(n_persons)
        self.status = np.where(p.unemployed, UNEMPLOYED, ACTIVE).astype(np.int64)
        self.status_cause = np.full(n_persons, self.cause["unstable_employment"], dtype=np.int64)
        self.status_since = np.full(n_persons, -1, dtype=np.int64)
        self.off_months = np.zeros(n_persons, dtype=np.int64)
        self.off_fraction = np.zeros(n_persons)
        self.off_long = np.zeros(n_persons, dtype=bool)
        self.enrolled = np.zeros((n_persons, 5), dtype=bool)
        # Members ordered by household, then by starting earnings from the top, to pick caregivers.
        self.earner_order = np.lexsort((-self.base, self.hh))

        # Household shock state: factors on business and farm income and when they began.
        self.business_factor = np.ones(n_households)
        self.business_months = np.zeros(n_households, dtype=np.int64)
        self.business_since = np.zeros(n_households, dtype=np.int64)
        self.disaster_business_factor = np.ones(n_households)
        self.disaster_business_months = np.zeros(n_households, dtype=np.int64)
        self.disaster_since = np.zeros(n_households, dtype=np.int64)
        self.farm_factor = np.ones(n_households)
        self.farm_months = np.zeros(n_households, dtype=np.int64)
        self.farm_since = np.zeros(n_households, dtype=np.int64)
        self.farm_cause = np.full(n_households, self.cause["disaster"], dtype=np.int64)
        self.farm_yield = np.ones(n_households)
        self.allowance_on = np.zeros(n_households, dtype=bool)
        self.low_income_on = np.zeros(n_households, dtype=bool)

        # Employment spells: the open spell of each member and the closed ones so far.
        age_years = self.age_months // 12
        self.in_employment_table = (age_years >= 16) & ~(
            (age_years >= ELDERLY_AGE) & (self.role == ROLE_NONE)
        )
        # Children and students start work once they leave school.
        self.may_start_work = (age_years < 16) | p.student
        self.kind = np.where(self.in_employment_table, self._implied_kind(), NO_KIND)
        self.spell_sector = np.where(self.kind <= 3, self.sector, -1)
        tenure = rng.geometric(1.0 / params.number("employment.initial_tenure_mean_months", 1.0), n_persons)
        self.spell_start = -np.minimum(tenure, np.maximum(age_years - 16, 0) * 12 + 1)
        self.closed_spells: list[tuple[np.ndarray, ...]] = []

        self.admission_scale = self._admission_scale()

    # Parameters used every month, read once.

    def _read_parameters(self) -> None:
        """Read and check the parameters the monthly steps use, once."""
        pr = self.params
        self.farming_months = pr.distribution("income.farming_months", 12)
        migrant = pr.vector("income.migrant_months", 12)
        self.migrant_months = migrant / migrant.mean()
        self.noise = {
            source: pr.number(f"income.noise_sigma.{source}", 0.0)
            for source in ("wage", "business", "property", "transfers")
        }

        bands = np.array(pr.get("mortality.bands"), dtype=np.float64)
        if bands.ndim != 2 or bands.shape[1] != 3:
            raise ValueError(
                f"simulator parameters {pr.source}: mortality.bands must be [low, high, rate] triples"
            )
        self.mortality_bands = bands
        lower_bounds = [int(group[0]) for group in pr.get("households.age_groups")]
        if lower_bounds != AGE_GROUP_LOWER_BOUNDS.tolist():
            raise ValueError(
                f"simulator parameters {pr.source}: households.age_groups must start at "
                f"{AGE_GROUP_LOWER_BOUNDS.tolist()}, got {lower_bounds}"
            )

        sectors = pr.mapping("employment.sectors")
        self.sector_job_loss = np.array([float(sectors[name]["job_loss"]) for name in sectors])
        self.wage_sector_count = len(sectors)
        shares = np.stack(
            [np.array([float(sectors[name][f"share_{k}"]) for name in sectors]) for k in ("rural", "urban")]
        )
        self.sector_shares = shares / shares.sum(axis=1, keepdims=True)
        self.sector_wage = np.array([float(sectors[name]["wage"]) for name in sectors])

        finding = pr.mapping("employment.job_finding_monthly")
        self.finding = {"normal": float(finding["normal"]), "fragile": float(finding["fragile"])}
        self.fragile_age = pr.integer("employment.fragile_age", 0)
        self.long_absence = pr.integer("employment.long_absence_months", 1)
        self.unemployment_rate = {
            kind: pr.probability(f"employment.unemployment_rate.{kind}") for kind in ("urban", "rural")
        }

    def _admission_scale(self) -> np.ndarray:
        """Return the per-age-group monthly admission probability, normalised to the published yearly rate."""
        pr = self.params
        relative = pr.vector("medical.admission_by_age_group", 6)
        groups = age_group(self.age_months // 12)
        multiplier = self._admission_multiplier()
        mean = (relative[groups] * multiplier).mean()
        return relative * pr.probability("medical.admission_rate") / mean / 12.0

    def _admission_multiplier(self) -> np.ndarray:
        pr = self.params
        former = np.where(
            self.pop.former_poor[self.hh], pr.number("medical.former_poor_multiplier", 0.0), 1.0
        )
        return former * np.where(self.chronic, pr.number("medical.chronic_multiplier", 0.0), 1.0)

    # Helpers.

    def _implied_kind(self) -> np.ndarray:
        """Return each member's employment kind implied by their role and status."""
        by_role = np.where(self.role > ROLE_NONE, self.role - 1, KIND_OUT_OF_LABOUR_FORCE)
        kind = np.where(self.status == UNEMPLOYED, KIND_UNEMPLOYED, by_role)
        kind = np.where((self.status == DISABLED) | (self.status == RETIRED), KIND_OUT_OF_LABOUR_FORCE, kind)
        kind = np.where((self.status == OFF) & self.off_long, KIND_OUT_OF_LABOUR_FORCE, kind)
        return np.where(self.alive, kind, NO_KIND)

    def _growth(self, month: int) -> np.ndarray:
        return np.exp(self.pop.growth * month / 12.0)

    def _potential(self, month: int) -> np.ndarray:
        """Return each member's de-seasonalised monthly earnings when no shock interferes."""
        return self.base * self._growth(month)[self.hh]

    def _eligible(self) -> np.ndarray:
        """Return households eligible for targeted help: poor history, low income or allowance."""
        return self.pop.former_poor | self.allowance_on | self.low_income_on

    def _set_status(self, persons: np.ndarray, status: int, cause: str, month: int) -> None:
        self.status[persons] = status
        self.status_cause[persons] = self.cause[cause]
        self.status_since[persons] = month

    def _earning(self) -> np.ndarray:
        """Return members who earn or could earn again: alive, with a role, not retired or disabled."""
        return self.alive & (self.role > ROLE_NONE) & np.isin(self.status, (ACTIVE, OFF, UNEMPLOYED))

    # The month.

    def step(self, month: int, year_index: int, monthly_income: np.ndarray) -> MonthResult:
        """Advance one month and return what the tables record for it.

        ``year_index`` counts calendar years from the start year, and
        ``monthly_income`` is each household's recent mean monthly income, which
        sets the allowance top-up.
        """
        month_of_year = (self.start_month_of_year + month) % 12
        result = MonthResult.empty(self.pop.household_count, self.cause_count)
        if month == 0 or month_of_year == 0:
            result.insurance = self._new_year(month)
        if month > 0:
            self.age_months += self.alive
        self._recover(month, result)
        self._deaths(month, result)
        self._retirements(month, year_index)
        self._new_disability(month, result)
        self._illness(month, result)
        self._accidents(month, result)
        self._job_loss(month, result)
        self._business_and_farm_failure(month, month_of_year, result)
        self._disasters(month, month_of_year, result)
        self._income(month, month_of_year, result)
        self._outpatient_and_chronic(month, result)
        if month_of_year == 8:
            self._school_leavers()
            self._schooling(result)
        self._assistance(year_index, monthly_income, result)
        self._update_spells(month)
        return result

    def _new_year(self, month: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw this year's insurance enrolment and farm yields, and raise pensions."""
        pr, rng, p = self.params, self.rng, self.pop
        n = p.person_count
        household = self.hh
        non_enrolling = p.non_enrolling[household]
        medical_probability = np.where(
            non_enrolling,
            pr.probability("insurance.enrol_probability.non_enrolling"),
            pr.probability("insurance.enrol_probability.normal"),
        )
        medical = rng.random(n) < medical_probability
        critical = medical & (rng.random(n) < pr.probability("insurance.critical_illness_given_medical"))
        age_years = self.age_months // 12
        adult = (age_years >= 16) & (age_years > p.school_until)
        formal = self.formal
        pension_probability = np.where(
            formal,
            pr.probability("insurance.pension.formal"),
            np.where(
                p.former_poor[household],
                pr.probability("insurance.pension.former_poor"),
                np.where(
                    p.urban[household],
                    pr.probability("insurance.pension.urban"),
                    pr.probability("insurance.pension.rural"),
                ),
            ),
        )
        pension = adult & (rng.random(n) < pension_probability)
        wage_worker = np.isin(self.role, (ROLE_LOCAL, ROLE_MIGRANT)) & np.isin(
            self.status, (ACTIVE, OFF, UNEMPLOYED)
        )
        unemployment = wage_worker & (
            rng.random(n)
            < np.where(
                formal,
                pr.probability("insurance.unemployment.formal"),
                pr.probability("insurance.unemployment.informal"),
            )
        )
        injury = wage_worker & (
            rng.random(n)
            < np.where(
                formal,
                pr.probability("insurance.work_injury.formal"),
                pr.probability("insurance.work_injury.informal"),
            )
        )
        self.enrolled[:] = (
            np.stack([medical, critical, pension, unemployment, injury], axis=1) & self.alive[:, None]
        )

        yield_sigma = pr.number("income.farm_yield_sigma", 0.0)
        price_sigma = pr.number("income.farm_price_sigma", 0.0)
        price = np.exp(price_sigma * rng.standard_normal(self.region_count) - 0.5 * price_sigma**2)
        self.farm_yield = price[p.region] * np.exp(
            yield_sigma * rng.standard_normal(p.household_count) - 0.5 * yield_sigma**2
        )
        if month > 0:
            self.pension *= 1.0 + pr.number("income.pension_growth")
            self.retirement_pension *= 1.0 + pr.number("income.pension_growth")

        # Rows: medical and critical illness for every living member, pension
        # for adults out of school, unemployment and work injury for wage workers.
        alive = self.alive
        has_row = np.stack([alive, alive, alive & adult, alive & wage_worker, alive & wage_worker], axis=1)
        persons, schemes = np.nonzero(has_row)
        return persons, schemes, self.enrolled[persons, schemes]

    def _income(self, month: int, month_of_year: int, result: MonthResult) -> None:
        """Compute income by source and attribute each shock's income loss to its cause group."""
        rng, p = self.rng, self.pop
        n_households, n_persons = p.household_count, len(self.alive)
        growth = self._growth(month)
        seasonal = np.ones(n_persons)
        seasonal[self.role == ROLE_MIGRANT] = self.migrant_months[month_of_year]
        farm_season = 12.0 * self.farming_months[month_of_year]
        seasonal[self.role == ROLE_FARM] = farm_season
        potential = self.base * growth[self.hh] * seasonal

        status_work = np.select(
            [self.status == ACTIVE, self.status == OFF], [1.0, 1.0 - self.off_fraction], default=0.0
        )
        work = status_work * self.chronic_work
        earned = potential * work
        recent = lambda since: (month - since) < self.memory  # noqa: E731
        chronic_loss = np.where(recent(self.chronic_since), potential * (1.0 - self.chronic_work), 0.0)
        status_loss = np.where(
            recent(self.status_since), potential * self.chronic_work * (1.0 - status_work), 0.0
        )
        retired = self.alive & (self.status == RETIRED)
        status_loss = np.where(retired, np.maximum(status_loss - self.retirement_pension, 0.0), status_loss)
        # Unemployment insurance pays part of the lost wage for a while, as a transfer.
        benefit = np.where(
            (self.status == UNEMPLOYED)
            & self.enrolled[:, UNEMPLOYMENT]
            & ((month - self.status_since) < self.params.integer("insurance.unemployment_benefit.months", 0)),
            self.params.probability("insurance.unemployment_benefit.replacement") * potential,
            0.0,
        )
        status_loss = np.maximum(status_loss - benefit, 0.0)
        pension_loss = np.where(self.died & recent(self.status_since), self.pension_lost, 0.0)

        wage_role = (self.role == ROLE_LOCAL) | (self.role == ROLE_MIGRANT)
        wage_noise = np.exp(
            self.noise["wage"] * rng.standard_normal(n_persons) - 0.5 * self.noise["wage"] ** 2
        )
        wage = np.bincount(
            self.hh, weights=np.where(wage_role, earned * wage_noise, 0.0), minlength=n_households
        )

        business_noise = np.exp(
            self.noise["business"] * rng.standard_normal(n_households) - 0.5 * self.noise["business"] ** 2
        )
        business_members = (
            np.bincount(
                self.hh, weights=np.where(self.role == ROLE_SELF, earned, 0.0), minlength=n_households
            )
            * business_noise
        )
        business = business_members * self.business_factor * self.disaster_business_factor
        business_failure_loss = np.where(
            recent(self.business_since), business_members * (1.0 - self.business_factor), 0.0
        )
        business_disaster_loss = np.where(
            recent(self.disaster_since),
            business_members * self.business_factor * (1.0 - self.disaster_business_factor),
            0.0,
        )

        farm_members = np.bincount(
            self.hh, weights=np.where(self.role == ROLE_FARM, earned, 0.0), minlength=n_households
        )
        farm_before = (farm_members + p.plot_base * growth * farm_season) * self.farm_yield
        farming = farm_before * self.farm_factor
        farm_loss = np.where(recent(self.farm_since), farm_before * (1.0 - self.farm_factor), 0.0)

        def noisy(values: np.ndarray, sigma: float) -> np.ndarray:
            return values * np.exp(sigma * rng.standard_normal(n_households) - 0.5 * sigma**2)

        pensions = np.bincount(self.hh, weights=self.pension, minlength=n_households)
        income = {
            "wage": wage,
            "business": business,
            "farming": farming,
            "property": noisy(p.property_base * growth, self.noise["property"]),
            "transfers": noisy(p.transfer_base * growth, self.noise["transfers"])
            + np.bincount(self.hh, weights=benefit, minlength=n_households),
            "pensions": pensions,
        }
        result.income = {source: np.rint(values) for source, values in income.items()}

        # Attribute losses: members by their status or chronic condition, households by their shock.
        causes = self.cause_count
        loss = np.bincount(
            self.hh * causes + self.status_cause,
            weights=status_loss + pension_loss,
            minlength=n_households * causes,
        )
        loss += np.bincount(
            self.hh * causes + self.cause["illness"], weights=chronic_loss, minlength=n_households * causes
        )
        loss = loss.reshape(n_households, causes)
        loss[:, self.cause["business_failure"]] += business_failure_loss
        loss[:, self.cause["disaster"]] += business_disaster_loss
        loss[np.arange(n_households), self.farm_cause] += farm_loss
        result.loss = loss

    def _outpatient_and_chronic(self, month: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        n = self.pop.household_count
        alive = self.alive
        age_years = self.age_months // 12
        elderly = np.bincount(self.hh, weights=alive & (age_years >= ELDERLY_AGE), minlength=n)
        chronic = np.bincount(self.hh, weights=alive & self.chronic, minlength=n)
        insured = np.bincount(self.hh, weights=alive & self.enrolled[:, MEDICAL], minlength=n)
        living = np.bincount(self.hh, weights=alive, minlength=n)
        insured_share = insured / np.maximum(living, 1)

        probability = np.minimum(
            pr.probability("medical.outpatient_probability_monthly")
            + pr.number("medical.outpatient_probability_per_elderly") * elderly
            + pr.number("medical.outpatient_probability_per_chronic") * chronic,
            pr.probability("medical.outpatient_probability_max"),
        )
        visiting = np.flatnonzero((living > 0) & (rng.random(n) < probability))
        cost = np.rint(
            lognormal(
                rng,
                pr.number("medical.outpatient_cost_mean", 0.0),
                pr.number("medical.outpatient_cost_sigma", 0.0),
                visiting.size,
            )
        )
        reimbursed = np.rint(
            cost * pr.probability("medical.outpatient_payment_ratio") * insured_share[visiting]
        )
        result.add_claims("outpatient", visiting, cost, reimbursed)
        result.spend += np.bincount(visiting, weights=cost - reimbursed, minlength=n)

        patients = np.flatnonzero(alive & self.chronic)
        cost = np.rint(
            lognormal(
                rng,
                pr.number("medical.chronic_cost_mean", 0.0),
                pr.number("medical.chronic_cost_sigma", 0.0),
                patients.size,
            )
        )
        covered = self.enrolled[patients, MEDICAL]
        reimbursed = np.rint(np.where(covered, cost * pr.probability("medical.chronic_payment_ratio"), 0.0))
        households = self.hh[patients]
        result.add_claims("chronic", households, cost, reimbursed)
        own = cost - reimbursed
        result.spend += np.bincount(households, weights=own, minlength=n)
        # Costs of a condition that began recently are a shock, while older conditions are routine spending.
        shock = self.chronic_new[patients] & ((month - self.chronic_since[patients]) < self.memory)
        gap = np.where(covered, 0.0, np.rint(cost * pr.probability("medical.chronic_payment_ratio")))
        result.spend_shock[:, self.cause["illness"]] += np.bincount(
            households, weights=np.where(shock, own - gap, 0.0), minlength=n
        )
        result.spend_shock[:, self.cause["insurance_gap"]] += np.bincount(
            households, weights=np.where(shock, gap, 0.0), minlength=n
        )

    def _school_leavers(self) -> None:
        """Start young members who left school on a job, each September."""
        pr, rng, p = self.params, self.rng, self.pop
        age_years = self.age_months // 12
        leaving = np.flatnonzero(
            self.may_start_work
            & self.alive
            & ~self.disabled
            & (age_years >= 16)
            & (age_years > p.school_until)
        )
        self.may_start_work[leaving] = False

        working = leaving[rng.random(leaving.size) < pr.probability("employment.school_leavers.work_share")]
        urban = p.urban[self.hh[working]]
        migrant = ~urban & (
            rng.random(working.size) < pr.probability("employment.school_leavers.migrant_share_rural")
        )
        role = np.where(migrant, ROLE_MIGRANT, ROLE_LOCAL)
        cumulative = np.cumsum(self.sector_shares, axis=1)
        urban_local = (urban & (role == ROLE_LOCAL)).astype(np.int64)
        sector = np.minimum(
            (rng.random(working.size)[:, None] >= cumulative[urban_local]).sum(axis=1),
            self.wage_sector_count - 1,
        )

        sigma = pr.number("income.person_wage_sigma", 0.0)
        wage = (
            p.expected_income_per_person[self.hh[working]]
            * pr.number("employment.school_leavers.wage_ratio", 0.0)
            * np.where(migrant, pr.number("income.migrant_wage_ratio", 0.0), 1.0)
            * self.sector_wage[sector]
            * np.exp(sigma * rng.standard_normal(working.size) - 0.5 * sigma**2)
            / 12.0
        )
        formal_share = np.where(
            urban,
            pr.probability("employment.formal_share.urban_local"),
            np.where(
                migrant,
                pr.probability("employment.formal_share.migrant"),
                pr.probability("employment.formal_share.rural_local"),
            ),
        )

        self.role[working] = role
        self.sector[working] = sector
        self.base[working] = np.maximum(wage, 0.0)
        self.status[working] = ACTIVE
        self.formal[working] = rng.random(working.size) < formal_share
        self.employee_medical[working] = self.formal[working]
        self.in_employment_table[working] = True

    def _schooling(self, result: MonthResult) -> None:
        """Charge the school year's costs and pay education subsidies each September."""
        pr, rng, p = self.params, self.rng, self.pop
        n = p.household_count
        age_years = self.age_months // 12
        student = self.alive & (age_years >= 6) & (age_years <= p.school_until)
        senior_high = student & (age_years >= 16) & (age_years <= 18)
        college = student & (age_years >= 19)
        low, high = pr.vector("schooling.senior_high_cost", 2)
        cost = np.zeros(len(student))
        cost[senior_high] = np.rint(rng.uniform(low, high, int(senior_high.sum())))
        cost[college] = np.rint(
            lognormal(
                rng,
                pr.number("schooling.college_cost_mean", 0.0),
                pr.number("schooling.college_cost_sigma", 0.0),
                int(college.sum()),
            )
        )
        paying = np.flatnonzero(cost > 0)
        result.add_event("schooling", self.hh[paying], cost[paying])
        spending = np.bincount(self.hh, weights=cost, minlength=n)
        result.spend += spending
        result.spend_shock[:, self.cause["schooling"]] += spending

        subsidy = np.where(
            college,
            pr.number("assistance.education_subsidy.college", 0.0),
            np.where(
                senior_high,
                pr.number("assistance.education_subsidy.senior_high", 0.0),
                pr.number("assistance.education_subsidy.compulsory", 0.0),
            ),
        )
        per_household = np.bincount(self.hh, weights=np.where(student, subsidy, 0.0), minlength=n)
        result.assistance["education_subsidy"] += np.where(self._eligible(), per_household, 0.0)

    def _assistance(self, year_index: int, monthly_income: np.ndarray, result: MonthResult) -> None:
        """Pay the allowance top-up, medical assistance and temporary assistance."""
        pr, rng, p = self.params, self.rng, self.pop
        n = p.household_count
        standard = self.standards[:, year_index]
        top_up = standard * p.members - monthly_income
        floor = pr.number("allowance_standard.minimum_payment", 0.0) * p.members
        result.assistance["allowance"] += np.where(self.allowance_on, np.rint(np.maximum(top_up, floor)), 0.0)

        inpatient_own = result.claims["inpatient"][2]
        threshold = pr.number("assistance.medical_assistance_threshold", 0.0)
        medical = pr.probability("assistance.medical_assistance_ratio") * np.maximum(
            inpatient_own - threshold, 0.0
        )
        result.assistance["medical_assistance"] += np.where(self._eligible(), np.rint(medical), 0.0)

        trigger = (inpatient_own >= pr.number("assistance.temporary_trigger_cost", 0.0)) | (
            result.event_count["death"] > 0
        )
        granted = trigger & (rng.random(n) < pr.probability("assistance.temporary_probability"))
        low, high = pr.vector("assistance.temporary_amount", 2)
        amount = np.rint(rng.uniform(low, high, n))
        result.assistance["temporary_assistance"] += np.where(granted, amount, 0.0)

    def _update_spells(self, month: int) -> None:
        """Close the spells of members whose employment kind changed this month and open new ones."""
        implied = np.where(self.in_employment_table, self._implied_kind(), NO_KIND)
        changed = np.flatnonzero(implied != self.kind)
        if changed.size == 0:
            return
        closing = changed[self.kind[changed] != NO_KIND]
        self.closed_spells.append(
            (
                closing.copy(),
                self.kind[closing].copy(),
                self.spell_sector[closing].copy(),
                self.spell_start[closing].copy(),
                np.full(closing.size, month - 1, dtype=np.int64),
            )
        )
        self.kind[changed] = implied[changed]
        self.spell_start[changed] = month
        self.spell_sector[changed] = np.where(implied[changed] <= 3, self.sector[changed], -1)

    def employment_spells(self, open_end: int) -> tuple[np.ndarray, ...]:
        """Return all spells: person, kind, sector, start and end months (``open_end`` for open spells)."""
        open_persons = np.flatnonzero(self.kind != NO_KIND)
        parts = self.closed_spells + [
            (
                open_persons,
                self.kind[open_persons],
                self.spell_sector[open_persons],
                self.spell_start[open_persons],
                np.full(open_persons.size, open_end, dtype=np.int64),
            )
        ]
        return tuple(np.concatenate([part[column] for part in parts]) for column in range(5))

    def labour_now(self) -> np.ndarray:
        """Return the number of members per household who earn or could earn now."""
        earning = self._earning() & (self.age_months < ELDERLY_AGE * 12)
        return np.bincount(self.hh, weights=earning, minlength=self.pop.household_count)
