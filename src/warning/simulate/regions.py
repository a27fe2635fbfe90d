"""Simulated regions, their township codes, and monitoring lines by year."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.simulate.params import Parameters


@dataclass(frozen=True)
class Region:
    """One county-level division and the knobs the simulator uses for it."""

    code: str
    name: str
    weight: float
    urban_share: float
    rural_income: float
    urban_income: float
    former_poor_share: float
    disaster_risk: float
    townships: int

    @property
    def province(self) -> str:
        return self.code[:2]

    @property
    def city(self) -> str:
        return self.code[:4]

    def township_codes(self, urban: bool) -> list[str]:
        """Return 9-digit codes: street offices (0xx) for urban, towns (1xx) and townships (2xx) for rural."""
        streets = max(1, round(self.townships * self.urban_share))
        rural = max(1, self.townships - streets)
        if urban:
            return [f"{self.code}{number:03d}" for number in range(1, streets + 1)]
        towns = (rural + 1) // 2
        codes = [f"{self.code}{100 + number:03d}" for number in range(1, towns + 1)]
        codes += [f"{self.code}{200 + number:03d}" for number in range(1, rural - towns + 1)]
        return codes


def load_regions(params: Parameters) -> list[Region]:
    """Read and check the region list: 6-digit unique codes with lines and allowance standards."""
    raw = params.get("regions")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"simulator parameters {params.source}: regions must be a non-empty list")
    provinces = params.mapping("monitoring_line.provinces")
    cities = params.mapping("allowance_standard.city_multiplier")
    regions: list[Region] = []
    for position, entry in enumerate(raw):
        where = f"simulator parameters {params.source}: regions[{position}]"
        try:
            region = Region(
                code=str(entry["code"]),
                name=str(entry["name"]),
                weight=float(entry["weight"]),
                urban_share=float(entry["urban_share"]),
                rural_income=float(entry["rural_income"]),
                urban_income=float(entry["urban_income"]),
                former_poor_share=float(entry["former_poor_share"]),
                disaster_risk=float(entry["disaster_risk"]),
                townships=int(entry["townships"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where} is invalid: {error!r}") from error
        if len(region.code) != 6 or not region.code.isdigit():
            raise ValueError(f"{where}: code must be 6 digits, got {region.code!r}")
        if not 0.0 <= region.urban_share <= 1.0 or not 0.0 <= region.former_poor_share <= 1.0:
            raise ValueError(f"{where}: urban_share and former_poor_share must be within [0, 1]")
        if region.weight <= 0 or not 1 <= region.townships <= 99:
            raise ValueError(f"{where}: weight must be positive and townships within 1..99")
        if region.province not in provinces:
            raise ValueError(
                f"{where}: province {region.province!r} has no entry in monitoring_line.provinces"
            )
        if region.city not in cities:
            raise ValueError(
                f"{where}: city {region.city!r} has no entry in allowance_standard.city_multiplier"
            )
        regions.append(region)
    codes = [region.code for region in regions]
    if len(set(codes)) != len(codes):
        raise ValueError(f"simulator parameters {params.source}: region codes repeat: {codes}")
    return regions


def _value_for_year(by_year: dict[int, float], year: int, growth: float) -> float:
    """Return a yearly value, extrapolated at ``growth`` a year outside the listed years."""
    years = sorted(by_year)
    if year in by_year:
        return float(by_year[year])
    if year > years[-1]:
        return float(by_year[years[-1]]) * (1.0 + growth) ** (year - years[-1])
    if year < years[0]:
        return float(by_year[years[0]]) / (1.0 + growth) ** (years[0] - year)
    earlier = max(known for known in years if known < year)
    return float(by_year[earlier])


def _int_keys(mapping: dict[object, object], where: str) -> dict[int, float]:
    try:
        return {int(str(key)): float(str(value)) for key, value in mapping.items()}
    except ValueError as error:
        raise ValueError(f"{where} must map years to numbers: {error}") from error


class Standards:
    """Monitoring lines and allowance standards per year, from the parameters."""

    def __init__(self, params: Parameters) -> None:
        self.params = params
        self.line_growth = params.number("monitoring_line.extrapolation_growth", -0.5, 1.0)
        self.national_rural = _int_keys(
            params.mapping("monitoring_line.national_rural"), "monitoring_line.national_rural"
        )
        self.provinces = {
            str(prefix): _int_keys(values, f"monitoring_line.provinces.{prefix}")
            for prefix, values in params.mapping("monitoring_line.provinces").items()
        }
        self.base_year = params.integer("allowance_standard.base_year")
        self.national_standard = {
            kind: params.number(f"allowance_standard.national.{kind}", 0.0) for kind in ("urban", "rural")
        }
        self.standard_growth = {
            kind: params.number(f"allowance_standard.annual_growth.{kind}", -0.5, 1.0)
            for kind in ("urban", "rural")
        }
        self.city_multiplier = {
            str(city): float(value)
            for city, value in params.mapping("allowance_standard.city_multiplier").items()
        }

    def allowance_standard(self, year: int, urban: bool, city: str | None) -> float:
        """Return the monthly allowance standard per person, rounded to whole yuan."""
        kind = "urban" if urban else "rural"
        growth = (1.0 + self.standard_growth[kind]) ** (year - self.base_year)
        multiplier = 1.0 if city is None else self.city_multiplier[city]
        return float(round(self.national_standard[kind] * multiplier * growth))

    def poverty_lines(self, years: list[int]) -> pd.DataFrame:
        """Return the contract ``poverty_lines`` rows for the given years.

        Rural lines come per province, with a national fallback row that has
        an empty prefix. Urban lines are each city's allowance standard times
        12, with the national average standard as the fallback.
        """
        rows: list[tuple[int, str | None, str, float]] = []
        for year in years:
            rows.append(
                (year, None, "rural", round(_value_for_year(self.national_rural, year, self.line_growth)))
            )
            for prefix, by_year in self.provinces.items():
                rows.append((year, prefix, "rural", round(_value_for_year(by_year, year, self.line_growth))))
            rows.append((year, None, "urban", 12.0 * self.allowance_standard(year, True, None)))
            for city in self.city_multiplier:
                rows.append((year, city, "urban", 12.0 * self.allowance_standard(year, True, city)))
        frame = pd.DataFrame(rows, columns=["year", "region_prefix", "urban_rural", "line"])
        frame["line"] = frame["line"].astype(np.float64)
        return frame


def line_matrix(
    lines: pd.DataFrame, region_codes: np.ndarray, urban: np.ndarray, years: list[int]
) -> np.ndarray:
    """Return each household's line for each year: the row with the longest matching region prefix."""
    result = np.zeros((len(region_codes), len(years)))
    prefixes = lines["region_prefix"].fillna("").astype(str).to_numpy()
    kinds = lines["urban_rural"].to_numpy()
    line_years = lines["year"].to_numpy()
    values = lines["line"].to_numpy()
    pairs = pd.DataFrame({"code": region_codes, "urban": urban})
    for (code, is_urban), group in pairs.groupby(["code", "urban"], sort=True):
        kind = "urban" if is_urban else "rural"
        for position, year in enumerate(years):
            match = (
                (line_years == year) & (kinds == kind) & np.array([str(code).startswith(p) for p in prefixes])
            )
            if not match.any():
                raise ValueError(f"no poverty line for region {code} ({kind}) in {year}")
            best = np.flatnonzero(match)[np.argmax([len(prefixes[i]) for i in np.flatnonzero(match)])]
            result[group.index.to_numpy(), position] = values[best]
    return result
