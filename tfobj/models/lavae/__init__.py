"""LAVAE: Disentangling Location and Appearance (Dittadi & Winther, 2019)."""
