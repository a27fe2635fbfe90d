"""Shock steps of the monthly simulation.

They cover deaths, retirement, disability, illness, accidents, job loss and
re-employment, business and farm failure, and disasters.

``ShockSteps`` is a mixin of :class:`warning.simulate.dynamics.Simulation` and
works on the member and household state that its constructor sets up.
"""

from __future__ import annotations

import numpy as np

from warning.simulate.population import ELDERLY_AGE, ROLE_FARM, ROLE_LOCAL, ROLE_MIGRANT, ROLE_NONE, ROLE_SELF
from warning.simulate.state import (
    ACTIVE,
    CRITICAL_ILLNESS,
    DEAD,
    DISABLED,
    MEDICAL,
    OFF,
    RETIRED,
    UNEMPLOYED,
    WORK_INJURY,
    MonthResult,
    age_group,
    lognormal,
)


class ShockSteps:
    """Monthly shock steps that change member status, household factors, claims and events."""

    def _recover(self, month: int, result: MonthResult) -> None:
        """End finished absences and let the unemployed find jobs."""
        rng = self.rng
        off = self.status == OFF
        self.off_months[off] -= 1
        back = np.flatnonzero(off & (self.off_months <= 0))
        self.status[back] = ACTIVE
        self.off_fraction[back] = 0.0
        back_from_long = back[self.off_long[back]]
        self.off_long[back] = False

        n = len(self.status)
        pr = self.params
        age_years = self.age_months // 12
        fragile = self.pop.former_poor[self.hh] | (age_years >= self.fragile_age)
        finding = np.where(fragile, self.finding["fragile"], self.finding["normal"])
        found = np.flatnonzero((self.status == UNEMPLOYED) & self.alive & (rng.random(n) < finding))
        self.status[found] = ACTIVE
        self.status_since[found] = month
        ratio = pr.number("employment.reemployment_wage_ratio", 0.0)
        sigma = pr.number("employment.reemployment_wage_sigma", 0.0)
        self.base[found] *= ratio * np.exp(sigma * rng.standard_normal(found.size) - 0.5 * sigma**2)
        urban_local = (self.pop.urban[self.hh[found]] & (self.role[found] == ROLE_LOCAL)).astype(np.int64)
        cumulative = np.cumsum(self.sector_shares, axis=1)
        draws = rng.random(found.size)
        new_sector = (draws[:, None] >= cumulative[urban_local]).sum(axis=1)
        self.sector[found] = np.minimum(new_sector, self.wage_sector_count - 1)

        # Some wage workers back from a long absence find their job gone. The
        # jobless months still count against the illness or accident.
        lost_job = back_from_long[
            np.isin(self.role[back_from_long], (ROLE_LOCAL, ROLE_MIGRANT))
            & (rng.random(back_from_long.size) < pr.probability("employment.job_lost_after_long_absence"))
        ]
        self.status[lost_job] = UNEMPLOYED

        supported = found[
            self._eligible()[self.hh[found]]
            & (rng.random(found.size) < pr.probability("assistance.employment_support_probability"))
        ]
        result.assistance["employment_support"] += np.bincount(
            self.hh[supported],
            weights=np.full(supported.size, pr.number("assistance.employment_support_amount", 0.0)),
            minlength=self.pop.household_count,
        )

    def _deaths(self, month: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        n = len(self.alive)
        age_years = self.age_months // 12
        yearly = np.zeros(n)
        for low, high, rate in self.mortality_bands:
            yearly = np.where((age_years >= low) & (age_years <= high), rate, yearly)
        yearly = yearly * np.where(
            self.pop.former_poor[self.hh], pr.number("mortality.former_poor_multiplier", 0.0), 1.0
        )
        monthly = 1.0 - (1.0 - np.minimum(yearly, 1.0)) ** (1.0 / 12.0)
        dying = np.flatnonzero(self.alive & (rng.random(n) < monthly))

        # NOTE: the last living member of a household does not die. A dissolved
        # household would leave a real panel, but here its empty income months
        # would read as a fall below the line.
        living = np.bincount(self.hh, weights=self.alive, minlength=self.pop.household_count)
        deaths = np.bincount(self.hh[dying], minlength=self.pop.household_count)
        dying = dying[deaths[self.hh[dying]] < living[self.hh[dying]]]
        if dying.size == 0:
            return

        earning = self._earning()[dying]
        potential = self._potential(month)[dying]
        loss = 12.0 * (np.where(earning, potential, 0.0) + self.pension[dying]) + pr.number(
            "mortality.funeral_cost", 0.0
        )
        result.add_event("death", self.hh[dying], loss)

        self.alive[dying] = False
        self.died[dying] = True
        # The household keeps part of the pension: see mortality.survivor_pension_share.
        survivor_share = pr.probability("mortality.survivor_pension_share")
        self.pension_lost[dying] = (1.0 - survivor_share) * self.pension[dying]
        self.pension[dying] *= survivor_share
        self.status_since[dying] = month
        self.status[dying] = DEAD
        self.status_cause[dying] = self.cause["lack_of_labour"]

    def _retirements(self, month: int, year_index: int) -> None:
        pr, rng = self.params, self.rng
        working = self._earning() & (self.age_months >= ELDERLY_AGE * 12)
        at_65 = self.age_months == ELDERLY_AGE * 12
        urban = self.pop.urban[self.hh]
        probability = np.where(
            at_65,
            np.where(
                urban,
                pr.probability("employment.retire_at_65.urban"),
                pr.probability("employment.retire_at_65.rural"),
            ),
            pr.probability("employment.retire_after_65_monthly"),
        )
        retiring = np.flatnonzero(working & (rng.random(len(working)) < probability))
        if retiring.size == 0:
            return
        formal = self.formal[retiring]
        resident = (
            pr.number("income.resident_pension_monthly", 0.0)
            * (1.0 + pr.number("income.pension_growth")) ** year_index
        )
        replacement = pr.number("income.pension_replacement_rate", 0.0) * self._potential(month)[retiring]
        gained = np.where(formal, replacement, resident)
        self.pension[retiring] += gained
        self.retirement_pension[retiring] = gained
        self._set_status(retiring, RETIRED, "lack_of_labour", month)

    def _disable(self, persons: np.ndarray, month: int, result: MonthResult) -> None:
        """Mark members disabled and stop the earners among them from working for good."""
        persons = persons[~self.disabled[persons]]
        if persons.size == 0:
            return
        earning = self._earning()[persons]
        loss = 12.0 * np.where(earning, self._potential(month)[persons], 0.0)
        result.add_event("disability", self.hh[persons], loss)
        self.disabled[persons] = True
        self._set_status(persons[earning], DISABLED, "disability", month)

    def _new_disability(self, month: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        age_years = self.age_months // 12
        yearly = pr.probability("disability.rate") * np.where(
            age_years >= 50, pr.number("disability.rate_multiplier_50_plus", 0.0), 1.0
        )
        candidates = self.alive & ~self.disabled & (age_years >= 16)
        onset = np.flatnonzero(candidates & (rng.random(len(candidates)) < yearly / 12.0))
        self._disable(onset, month, result)

    def _reimbursement(self, persons: np.ndarray, cost: np.ndarray, insured: np.ndarray) -> np.ndarray:
        """Return what basic medical and critical-illness insurance pay on inpatient costs."""
        pr = self.params
        employee = self.employee_medical[persons]
        in_list = pr.probability("medical.in_list_share")
        ratio = (
            np.where(
                employee,
                pr.probability("medical.payment_ratio.employee"),
                pr.probability("medical.payment_ratio.resident"),
            )
            * in_list
        )
        paid = cost * ratio
        critical = ~employee & self.enrolled[persons, CRITICAL_ILLNESS]
        above = np.maximum(cost - paid - pr.number("medical.critical_illness_deductible", 0.0), 0.0)
        paid = paid + np.where(critical, pr.probability("medical.critical_illness_ratio") * above, 0.0)
        return np.where(insured, paid, 0.0)

    def _resident_reimbursement(self, cost: np.ndarray) -> np.ndarray:
        """Return what resident insurance would have paid, for costs of uninsured members."""
        pr = self.params
        paid = (
            cost * pr.probability("medical.payment_ratio.resident") * pr.probability("medical.in_list_share")
        )
        above = np.maximum(cost - paid - pr.number("medical.critical_illness_deductible", 0.0), 0.0)
        return paid + pr.probability("medical.critical_illness_ratio") * above

    def _record_inpatient(
        self,
        persons: np.ndarray,
        cost: np.ndarray,
        reimbursed: np.ndarray,
        insured: np.ndarray,
        cause: str,
        result: MonthResult,
    ) -> np.ndarray:
        """Add inpatient claims and their rigid spending, and return out-of-pocket cost per member."""
        households = self.hh[persons]
        result.add_claims("inpatient", households, cost, reimbursed)
        own = cost - reimbursed
        gap = np.where(insured, 0.0, np.minimum(np.rint(self._resident_reimbursement(cost)), own))
        size = self.pop.household_count
        result.spend += np.bincount(households, weights=own, minlength=size)
        result.spend_shock[:, self.cause[cause]] += np.bincount(households, weights=own - gap, minlength=size)
        result.spend_shock[:, self.cause["insurance_gap"]] += np.bincount(
            households, weights=gap, minlength=size
        )
        return own

    def _absence_months(self, prefix: str, size: int) -> np.ndarray:
        pr = self.params
        extra = self.rng.geometric(1.0 / (1.0 + pr.number(f"{prefix}_mean_extra", 0.0)), size) - 1
        return np.minimum(pr.integer(f"{prefix}_min", 0) + extra, pr.integer(f"{prefix}_max", 1))

    def _take_off(
        self, persons: np.ndarray, months: np.ndarray, fraction: np.ndarray | float, cause: str, month: int
    ) -> None:
        """Send active or absent earners off work, keeping the longer and larger of two absences."""
        fraction = np.broadcast_to(np.asarray(fraction, dtype=np.float64), persons.shape)
        able = (
            np.isin(self.status[persons], (ACTIVE, OFF))
            & self.alive[persons]
            & (self.role[persons] > ROLE_NONE)
        )
        persons, months, fraction = persons[able], months[able], fraction[able]
        already_off = self.status[persons] == OFF
        # The absence keeps the cause of whichever shock keeps the member off longer.
        takes_over = ~already_off | (months >= self.off_months[persons])
        self.off_months[persons] = np.maximum(np.where(already_off, self.off_months[persons], 0), months)
        self.off_fraction[persons] = np.maximum(
            np.where(already_off, self.off_fraction[persons], 0.0), fraction
        )
        self.off_long[persons] = (self.off_months[persons] >= self.long_absence) & (
            self.off_fraction[persons] >= 1.0
        )
        self.status[persons] = OFF
        self._set_status(persons[takes_over], OFF, cause, month)

    def _caregivers(self, households: np.ndarray) -> np.ndarray:
        """Return the top-earning active member of each household, or -1."""
        candidate = self.alive & (self.role > ROLE_NONE) & (self.status == ACTIVE)
        order = self.earner_order[candidate[self.earner_order]]
        first_households, first = np.unique(self.hh[order], return_index=True)
        by_household = np.full(self.pop.household_count, -1, dtype=np.int64)
        by_household[first_households] = order[first]
        return by_household[households]

    def _illness(self, month: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        n = len(self.alive)
        groups = age_group(self.age_months // 12)
        probability = self.admission_scale[groups] * self._admission_multiplier()
        admitted = np.flatnonzero(self.alive & (rng.random(n) < probability))
        count = admitted.size
        if count == 0:
            return
        employee = self.employee_medical[admitted]
        insured = self.enrolled[admitted, MEDICAL]
        mean_cost = np.where(
            employee,
            pr.number("medical.cost_mean.employee", 0.0),
            pr.number("medical.cost_mean.resident", 0.0),
        )
        severe = rng.random(count) < pr.probability("medical.severe_share")
        cost = lognormal(rng, mean_cost, pr.number("medical.cost_sigma", 0.0), count)
        cost = np.rint(cost * np.where(severe, pr.number("medical.severe_cost_multiplier", 0.0), 1.0))
        reimbursed = np.rint(self._reimbursement(admitted, cost, insured))
        own = self._record_inpatient(admitted, cost, reimbursed, insured, "illness", result)

        # Work lost: severe stays take months, minor ones part of a month.
        potential = self._potential(month)[admitted]
        earner = self._earning()[admitted] & (self.status[admitted] != UNEMPLOYED)
        months = np.where(severe, self._absence_months("medical.severe_months", count), 1)
        fraction = np.where(severe, 1.0, pr.probability("medical.minor_work_loss"))
        self._take_off(admitted[earner], months[earner], fraction[earner], "illness", month)
        lost = np.where(earner, potential * months * fraction, 0.0)

        # A severely ill member who does not earn needs care from the top earner.
        cared = admitted[severe & ~earner]
        caregivers = self._caregivers(self.hh[cared])
        has_caregiver = caregivers >= 0
        care_months = np.minimum(
            months[severe & ~earner][has_caregiver], pr.integer("medical.caregiver_months_max", 1)
        )
        self._take_off(
            caregivers[has_caregiver],
            care_months,
            pr.probability("medical.caregiver_work_loss"),
            "illness",
            month,
        )

        # Severe illness can leave a chronic condition or a disability.
        chronic = admitted[
            severe
            & ~self.chronic[admitted]
            & (rng.random(count) < pr.probability("medical.chronic_after_severe"))
        ]
        self.chronic[chronic] = True
        self.chronic_new[chronic] = True
        self.chronic_since[chronic] = month
        self.chronic_work[chronic] = np.where(
            self.role[chronic] > ROLE_NONE, pr.probability("medical.chronic_work_fraction"), 1.0
        )
        disabled = admitted[severe & (rng.random(count) < pr.probability("medical.disability_after_severe"))]
        self._disable(disabled, month, result)

        result.add_event("illness", self.hh[admitted[severe]], (own + lost)[severe])

    def _accidents(self, month: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        n = len(self.alive)
        age_years = self.age_months // 12
        working_age = (age_years >= 16) & (age_years < ELDERLY_AGE)
        injured = np.flatnonzero(
            self.alive & working_age & (rng.random(n) < pr.probability("accident.rate") / 12.0)
        )
        count = injured.size
        if count == 0:
            return
        at_work = (
            np.isin(self.role[injured], (ROLE_LOCAL, ROLE_MIGRANT))
            & (self.status[injured] == ACTIVE)
            & (rng.random(count) < pr.probability("accident.at_work_share"))
        )
        covered_at_work = at_work & self.enrolled[injured, WORK_INJURY]
        insured = self.enrolled[injured, MEDICAL] | covered_at_work
        cost = np.rint(
            lognormal(rng, pr.number("accident.cost_mean", 0.0), pr.number("accident.cost_sigma", 0.0), count)
        )
        reimbursed = np.where(
            covered_at_work,
            cost * pr.probability("accident.work_injury_payment_ratio"),
            self._reimbursement(injured, cost, insured),
        )
        reimbursed = np.rint(reimbursed)
        own = self._record_inpatient(injured, cost, reimbursed, insured, "accident", result)

        earner = self._earning()[injured] & (self.status[injured] != UNEMPLOYED)
        months = self._absence_months("accident.months", count)
        self._take_off(injured[earner], months[earner], 1.0, "accident", month)
        lost = np.where(earner, self._potential(month)[injured] * months, 0.0)
        result.add_event("accident", self.hh[injured], own + lost)
        disabled = injured[rng.random(count) < pr.probability("accident.disability_share")]
        self._disable(disabled, month, result)

    def _job_loss(self, month: int, result: MonthResult) -> None:
        rng = self.rng
        n = len(self.alive)
        wage = self.alive & np.isin(self.role, (ROLE_LOCAL, ROLE_MIGRANT)) & (self.status == ACTIVE)
        urban = self.pop.urban[self.hh] & (self.role == ROLE_LOCAL)
        rate = np.where(urban, self.unemployment_rate["urban"], self.unemployment_rate["rural"])
        # A stationary rate u with job finding f needs monthly separations s = u f / (1 - u).
        separation = rate * self.finding["normal"] / (1.0 - rate)
        separation = separation * self.sector_job_loss[np.clip(self.sector, 0, self.wage_sector_count - 1)]
        losing = np.flatnonzero(wage & (rng.random(n) < separation))
        if losing.size == 0:
            return
        age_years = self.age_months[losing] // 12
        fragile = self.pop.former_poor[self.hh[losing]] | (age_years >= self.fragile_age)
        expected_months = 1.0 / np.where(fragile, self.finding["fragile"], self.finding["normal"])
        result.add_event("job_loss", self.hh[losing], self._potential(month)[losing] * expected_months)
        self._set_status(losing, UNEMPLOYED, "unstable_employment", month)

    def _farm_potential(self, month: int) -> np.ndarray:
        """Return each household's de-seasonalised monthly farm income before farm shocks."""
        farm = self.alive & (self.role == ROLE_FARM)
        members = np.bincount(
            self.hh, weights=np.where(farm, self._potential(month), 0.0), minlength=self.pop.household_count
        )
        return members + self.pop.plot_base * self._growth(month)

    def _business_potential(self, month: int) -> np.ndarray:
        business = self.alive & (self.role == ROLE_SELF)
        return np.bincount(
            self.hh,
            weights=np.where(business, self._potential(month), 0.0),
            minlength=self.pop.household_count,
        )

    def _season_ahead(self, month_of_year: int, months: int) -> float:
        """Return the share of a year's farm income sold in the coming ``months`` months."""
        return float(self.farming_months[(month_of_year + np.arange(months)) % 12].sum())

    def _business_and_farm_failure(self, month: int, month_of_year: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        n = self.pop.household_count

        # Failures that ran their course recover, at a lower level for some.
        self.business_months[self.business_months > 0] -= 1
        recovered = np.flatnonzero((self.business_months == 0) & (self.business_factor != 1.0))
        if recovered.size:
            level = rng.uniform(
                pr.number("business.recovered_level_min"),
                pr.number("business.recovered_level_max"),
                recovered.size,
            )
            scale = np.ones(n)
            scale[recovered] = level
            owners = self.role == ROLE_SELF
            self.base[owners] *= scale[self.hh[owners]]
            self.business_factor[recovered] = 1.0
        self.farm_months[self.farm_months > 0] -= 1
        self.farm_factor[self.farm_months == 0] = 1.0
        self.disaster_business_months[self.disaster_business_months > 0] -= 1
        self.disaster_business_factor[self.disaster_business_months == 0] = 1.0

        business = self._business_potential(month)
        failing = np.flatnonzero(
            (business > 0)
            & (self.business_months == 0)
            & (rng.random(n) < pr.probability("business.failure_rate") / 12.0)
        )
        if failing.size:
            residual = rng.uniform(
                pr.number("business.residual_min"), pr.number("business.residual_max"), failing.size
            )
            months = rng.integers(
                pr.integer("business.recovery_months_min", 1),
                pr.integer("business.recovery_months_max", 1) + 1,
                failing.size,
            )
            self.business_factor[failing] = residual
            self.business_months[failing] = months
            self.business_since[failing] = month
            result.add_event(
                "business_failure", failing, business[failing] * (1.0 - residual) * np.minimum(months, 12)
            )

        farm = self._farm_potential(month)
        failing = np.flatnonzero(
            (farm > 0)
            & (self.farm_months == 0)
            & (rng.random(n) < pr.probability("business.farm_failure_rate") / 12.0)
        )
        if failing.size:
            residual = rng.uniform(
                pr.number("business.farm_residual_min"), pr.number("business.farm_residual_max"), failing.size
            )
            months = rng.integers(
                pr.integer("business.farm_months_min", 1),
                pr.integer("business.farm_months_max", 1) + 1,
                failing.size,
            )
            self.farm_factor[failing] = residual
            self.farm_months[failing] = months
            self.farm_since[failing] = month
            self.farm_cause[failing] = self.cause["business_failure"]
            ahead = np.array([self._season_ahead(month_of_year, int(m)) for m in range(13)])[
                np.minimum(months, 12)
            ]
            result.add_event("business_failure", failing, farm[failing] * 12.0 * ahead * (1.0 - residual))

    def _disasters(self, month: int, month_of_year: int, result: MonthResult) -> None:
        pr, rng = self.params, self.rng
        p = self.pop
        n = p.household_count
        probability = pr.vector("disaster.county_probability_monthly", 12)[month_of_year] * self.disaster_risk
        struck = rng.random(self.region_count) < probability
        severity = rng.uniform(
            pr.number("disaster.severity_min"), pr.number("disaster.severity_max"), self.region_count
        )
        share = np.where(
            p.urban,
            pr.probability("disaster.affected_share.urban"),
            pr.probability("disaster.affected_share.rural"),
        )
        draws = rng.random(n)
        affected = np.flatnonzero(struck[p.region] & (draws < share))
        if affected.size == 0:
            return
        a, b = pr.vector("disaster.farm_loss_beta", 2)
        loss_share = np.minimum(
            rng.beta(a, b, affected.size) * severity[p.region[affected]],
            pr.probability("disaster.farm_loss_max"),
        )
        farm_months = pr.integer("disaster.farm_loss_months", 1)
        self.farm_factor[affected] = np.minimum(self.farm_factor[affected], 1.0 - loss_share)
        self.farm_months[affected] = np.maximum(self.farm_months[affected], farm_months)
        self.farm_since[affected] = month
        self.farm_cause[affected] = self.cause["disaster"]
        business_share = pr.probability("disaster.business_loss_share") * loss_share
        business_months = pr.integer("disaster.business_loss_months", 1)
        self.disaster_business_factor[affected] = 1.0 - business_share
        self.disaster_business_months[affected] = business_months
        self.disaster_since[affected] = month

        severe = rng.random(affected.size) < pr.probability("disaster.severe_share")
        house = np.where(
            severe,
            lognormal(
                rng,
                pr.number("disaster.house_loss_mean", 0.0),
                pr.number("disaster.house_loss_sigma", 0.0),
                affected.size,
            ),
            0.0,
        )
        farm_loss = (
            self._farm_potential(month)[affected]
            * 12.0
            * self._season_ahead(month_of_year, farm_months)
            * loss_share
        )
        business_loss = self._business_potential(month)[affected] * business_share * business_months
        loss = farm_loss + business_loss + house
        recorded = loss > 0
        result.add_event("disaster", affected[recorded], loss[recorded])

        relief = (
            (severe | (loss_share >= pr.probability("assistance.disaster_relief_min_loss_share")))
            & (loss > 0)
            & (rng.random(affected.size) < pr.probability("assistance.disaster_relief_probability"))
        )
        amount = np.minimum(
            pr.probability("assistance.disaster_relief_share") * loss,
            pr.number("assistance.disaster_relief_cap", 0.0),
        )
        result.assistance["disaster_relief"] += np.bincount(
            affected[relief], weights=np.rint(amount[relief]), minlength=n
        )
