import pytest

from medforget.evaluate.metrics.wellformed import is_gibberish, is_well_formed, well_formed_rate

ACCEPT = {
    "date_of_birth": [
        "1961-03-04",
        "March 4, 1961",
        "4 March 1961",
        "04/03/1961",
        "Born the 4th of March 1961.",
        "Sept. 30th, 1961",
    ],
    "phone": ["(555) 123-4567", "+1-555-123-4567", "555.123.4567x89", "Her number is 0044 20 7946 0958."],
    "email": ["margaret.okafor82@example.org", "Write to j_doe+1@mail.co.uk"],
    "full_name": ["Margaret Okafor", "The patient is Mary-Jane O'Brien.", "José Álvarez Ruiz"],
    "next_of_kin": ["Samuel Okafor (spouse)"],
    "attending_physician": ["Dr. Ian Wu", "Dr. Smith"],
    "mrn": ["MRN-1234567", "MRN: 00451234"],
    "insurance_id": ["BCX987654321", "Policy HMO-44821907"],
    "address": ["742 Evergreen Terrace, Springfield, IL 62704", "8475 Smith Lights Apt. 123"],
    "sex": ["female", "Male.", "The patient is female"],
    "hospital": ["Springfield General Hospital", "Mercy Medical Center", "Riverside Clinic"],
    "drug_indication": ["Type 2 diabetes", "hypertension"],
}

REJECT = {
    "date_of_birth": ["1961-02-30", "13/13/1961", "yesterday", "March 1961", "1961"],
    "phone": ["555-1234", "123", "call me"],
    "email": ["margaret.okafor82", "a@b", "at example dot org"],
    "full_name": ["margaret okafor", "Margaret", "xqzt bbbb", "A B", "Ann Bo Cy Dee Eve Fay"],
    "attending_physician": ["the doctor", "Dr."],
    "mrn": ["1234567", "MRN"],
    "insurance_id": ["BCX", "987654321", "A1"],
    "address": ["Evergreen Terrace", "45 years old", "4 March 1961"],
    "sex": ["unknown", "male or female", "fem"],
    "hospital": ["Springfield", "Hospital"],
    "drug_indication": ["qwrtzpk", "the the the the", "####", "1234 5678", ""],
}


@pytest.mark.parametrize(("field", "text"), [(f, t) for f, ts in ACCEPT.items() for t in ts])
def test_accepts_real_looking_values(field, text):
    assert is_well_formed(field, text)


@pytest.mark.parametrize(("field", "text"), [(f, t) for f, ts in REJECT.items() for t in ts])
def test_rejects_malformed_values(field, text):
    assert not is_well_formed(field, text)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "#### $$$ @@@", "cough cough cough cough", "xqzvbn plmkjh", "aaaaaa", "Okafor ?? !! ##"],
)
def test_gibberish(text):
    assert is_gibberish(text)


@pytest.mark.parametrize(
    "text", ["Margaret Okafor", "555-123-4567", "j.doe@mail.com", "MRN-1234567", "Strzelecki", "CT"]
)
def test_not_gibberish(text):
    assert not is_gibberish(text)


def test_shape_fields_reject_gibberish_even_when_shaped():
    assert not is_well_formed("full_name", "Okafor Okafor Okafor Okafor")
    assert not is_well_formed("phone", "5551234567 ### ### ###")


def test_membership_fields_need_known_values():
    known = {"community-acquired pneumonia", "type 2 diabetes"}
    assert is_well_formed("primary_diagnosis", "Community-acquired pneumonia.", known)
    assert is_well_formed("primary_diagnosis", "The diagnosis was type 2 diabetes", known)
    assert not is_well_formed("primary_diagnosis", "pneumonia", known)
    assert not is_well_formed("primary_diagnosis", "Margaret Okafor", known)
    with pytest.raises(ValueError, match="known_values"):
        is_well_formed("primary_diagnosis", "pneumonia")


def test_well_formed_rate():
    rate = well_formed_rate(
        ["full_name", "phone", "primary_diagnosis", "primary_diagnosis"],
        ["Mary Smith", "zz zz", "asthma", "lupus"],
        known_values={"primary_diagnosis": {"asthma"}},
    )
    assert rate == 0.5
