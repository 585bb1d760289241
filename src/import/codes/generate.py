#!/usr/bin/env python3
"""Regenerates the conversion tables in this folder from the code tables in
../shared/data/external/codes (see docs/import.md for their provenance).

    python3 src/import/codes/generate.py ../shared/data/external/codes

Run from the repository root. The output is committed; annals never reads
../shared at run time.
"""
import csv, os, sys

codes = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/external/codes"
here = os.path.dirname(os.path.abspath(__file__))

rows = list(csv.DictReader(open(os.path.join(codes, "country/country-codes.csv"), encoding="utf-8")))
out = []
for r in rows:
    a2 = r["ISO3166-1-Alpha-2"].strip()
    if not a2:
        continue
    out.append((a2, r["ISO3166-1-Alpha-3"].strip(), r["ISO3166-1-numeric"].strip(),
                r["FIPS"].strip(), r["CLDR display name"].strip(), r["official_name_en"].strip()))
# Kosovo is user-assigned (XK) and absent from the table; event data uses it.
out.append(("XK", "XKX", "", "KV", "Kosovo", "Kosovo"))
# FIPS 10-4 fixes: the table writes several codes run together (`GZWE`,
# `RIKV`); Kosovo's KV belongs to XK; BQ shares the Netherlands' NL; GDELT
# also writes Serbia as RB and (former) Yugoslavia as YI.
def fips_list(a2, f):
    codes = [f[i:i + 2] for i in range(0, len(f), 2)]
    if a2 == "RS":
        codes = [c for c in codes if c != "KV"] + ["RB", "YI"]
    if a2 == "BQ":
        codes = []
    return " ".join(codes)
out = [(r[0], r[1], r[2], fips_list(r[0], r[3]), r[4], r[5]) for r in out]
out.sort()
with open(os.path.join(here, "countries.tsv"), "w", encoding="utf-8") as f:
    f.write("iso2\tiso3\tnumeric\tfips\tname\tofficial_name\n")
    for r in out:
        f.write("\t".join(r) + "\n")

iso3 = {r[1]: r[0] for r in out}
# CAMEO country codes that are not the ISO alpha-3 of the same country.
cameo_extra = {"ROM": "RO", "TMP": "TL", "MTN": "ME", "IMY": "IM", "WSB": "PS",
               "GZS": "PS", "BAG": "IQ", "KOS": "XK", "TWN": "TW", "SSD": "SS"}
seen = {}
for name in ("CAMEO.country.txt", "CAMEO.country.joshmorel-augmented.txt"):
    for line in open(os.path.join(codes, "gdelt_cameo", name), encoding="utf-8"):
        code, _, label = line.rstrip("\n").partition("\t")
        if code in ("CODE", "0") or not code:
            continue
        a2 = cameo_extra.get(code) or iso3.get(code)
        if a2:
            seen[code] = (a2, label.strip())
with open(os.path.join(here, "cameo_countries.tsv"), "w", encoding="utf-8") as f:
    f.write("cameo\tiso2\tlabel\n")
    for code in sorted(seen):
        f.write(f"{code}\t{seen[code][0]}\t{seen[code][1]}\n")

# Country names as event datasets (ACLED's `country` column) write them:
# the table's display and official names, and the spellings ACLED uses.
aliases = {
    "United States": "US", "Turkey": "TR", "Democratic Republic of Congo": "CD",
    "Republic of Congo": "CG", "United Kingdom": "GB", "Czech Republic": "CZ",
    "Reunion": "RE", "Curacao": "CW", "Bailiwick of Guernsey": "GG",
    "Bailiwick of Jersey": "JE", "East Timor": "TL", "eSwatini": "SZ",
    "Swaziland": "SZ", "Ivory Coast": "CI", "Cape Verde": "CV",
    "Russia": "RU", "Iran": "IR", "Syria": "SY", "Laos": "LA",
    "Vietnam": "VN", "South Korea": "KR", "North Korea": "KP", "Moldova": "MD",
    "Bolivia": "BO", "Venezuela": "VE", "Tanzania": "TZ", "Palestine": "PS",
    "North Macedonia": "MK", "Macedonia": "MK", "Micronesia": "FM",
    "Vatican City": "VA", "Saint-Barthelemy": "BL", "Saint-Martin": "MF",
    "Sint Maarten": "SX", "Caribbean Netherlands": "BQ", "Taiwan": "TW",
    "Brunei": "BN", "Kosovo": "XK", "Falkland Islands": "FK",
    "British Virgin Islands": "VG", "United States Virgin Islands": "VI",
    "Wallis and Futuna": "WF", "Sao Tome and Principe": "ST",
    "Akrotiri and Dhekelia": "CY", "Aland Islands": "AX",
}
names = {}
for r in out:
    for n in (r[4], r[5]):
        if n:
            names.setdefault(n.lower(), r[0])
for n, a2 in aliases.items():
    names[n.lower()] = a2
with open(os.path.join(here, "country_names.tsv"), "w", encoding="utf-8") as f:
    f.write("name\tiso2\n")
    for n in sorted(names):
        f.write(f"{n}\t{names[n]}\n")

# One kind per CAMEO root code: its description in snake_case, shortened
# where the brief names a shorter kind (14 protest, 19 fight).
kinds = {"01": "make_statement", "02": "appeal", "03": "express_intent_to_cooperate",
         "04": "consult", "05": "diplomatic_cooperation", "06": "material_cooperation",
         "07": "provide_aid", "08": "yield", "09": "investigate", "10": "demand",
         "11": "disapprove", "12": "reject", "13": "threaten", "14": "protest",
         "15": "exhibit_force_posture", "16": "reduce_relations", "17": "coerce",
         "18": "assault", "19": "fight", "20": "mass_violence"}
with open(os.path.join(here, "cameo_roots.tsv"), "w", encoding="utf-8") as f:
    f.write("root\tkind\tdescription\n")
    for line in open(os.path.join(codes, "gdelt_cameo", "CAMEO.eventcodes.txt"), encoding="utf-8"):
        code, _, label = line.rstrip("\n").partition("\t")
        if len(code) == 2 and code in kinds:
            f.write(f"{code}\t{kinds[code]}\t{label.strip()}\n")
