from streams.privacy import Pseudonymiser


def test_pseudonyms_are_stable_keyed_and_valid_identifiers() -> None:
    alice = Pseudonymiser(b"secret-1").apply("alice@example.com")
    assert alice == Pseudonymiser(b"secret-1").apply("alice@example.com")
    assert alice != Pseudonymiser(b"secret-2").apply("alice@example.com")
    assert alice != Pseudonymiser(b"secret-1").apply("bob@example.com")
    assert "alice" not in alice and alice.startswith("p_") and len(alice) == 34


def test_without_a_key_ids_pass_through() -> None:
    assert Pseudonymiser(None).apply("alice") == "alice"
    assert not Pseudonymiser(b"").enabled
