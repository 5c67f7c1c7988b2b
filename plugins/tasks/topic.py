"""Topic: one-sentence news headlines from templates, each topic with its own vocabulary."""

from __future__ import annotations

import random

from harness.api import Example, GeneratedTask, classification_example, hookimpl

# Headline shapes every topic uses: for these the topic can only be read from the slot words.
SHARED = ("{actor} announces {thing} in {place}", "{actor} and {actor2} agree on {thing}",
          "{actor} heads to {place} ahead of {thing}")
# Per topic: two headline shapes of its own and the words that fill the slots (actors singular).
VOCAB = {
    "world": {
        "templates": ("{actor} pushes for {thing} at {place} summit",
                      "Protests in {place} as {actor} backs {thing}"),
        "actor": ("The president", "The prime minister", "The UN", "The foreign minister",
                  "NATO", "The EU", "The parliament", "The rebel leader", "The king",
                  "The opposition leader", "The envoy", "The African Union"),
        "thing": ("a ceasefire", "new sanctions", "border security", "refugee aid",
                  "election reform", "a peace treaty", "troop withdrawal", "a prisoner swap",
                  "visa rules", "arms control", "a new constitution", "food aid"),
        "place": ("Geneva", "Kabul", "Nairobi", "Brussels", "Caracas", "Seoul", "Cairo", "Kyiv",
                  "Delhi", "Lima"),
    },
    "sports": {
        "templates": ("{actor} eyes {thing} after win in {place}",
                      "Fans in {place} cheer as {actor} chases {thing}"),
        "actor": ("Liverpool", "Real Madrid", "Juventus", "Bayern Munich", "The coach",
                  "The star striker", "The Olympic champion", "The goalkeeper",
                  "The national team", "The captain", "The league", "Serena Williams"),
        "thing": ("the league title", "a transfer deal", "the playoff final", "the World Cup",
                  "a new contract", "the marathon record", "the championship", "the derby",
                  "the semifinal", "a comeback win", "the cup final", "a gold medal"),
        "place": ("Madrid", "Boston", "Manchester", "Melbourne", "Milan", "Dallas", "Munich",
                  "Lyon", "Turin", "Porto"),
    },
    "business": {
        "templates": ("Shares of {actor} fall in {place} after {thing}",
                      "{actor} posts record profit in {place} despite {thing}"),
        "actor": ("Apple", "Amazon", "The central bank", "Toyota", "Shell", "Goldman Sachs",
                  "The retail giant", "The startup", "Samsung", "Unilever", "The airline",
                  "The chipmaker"),
        "thing": ("a merger", "quarterly earnings", "job cuts", "a stock buyback",
                  "rising interest rates", "a price hike", "a takeover bid", "weak sales",
                  "a bond sale", "new tariffs", "a profit warning", "an IPO"),
        "place": ("London", "Tokyo", "Frankfurt", "New York", "Shanghai", "Zurich", "Mumbai",
                  "Toronto", "Singapore", "Chicago"),
    },
    "science": {
        "templates": ("Researchers in {place} report {thing}, says {actor}",
                      "{actor} unveils {thing} at {place} conference"),
        "actor": ("NASA", "The physicist", "The biologist", "The research team", "CERN",
                  "The astronomer", "The space agency", "The geneticist", "The lab",
                  "The chemist", "The observatory", "The climate scientist"),
        "thing": ("a new exoplanet", "gene editing", "a dinosaur fossil", "dark matter",
                  "a vaccine trial", "ocean warming", "a quantum computer", "a Mars mission",
                  "a new antibiotic", "a black hole image", "a fusion experiment",
                  "a brain implant"),
        "place": ("Oxford", "Pasadena", "Cambridge", "Heidelberg", "Kyoto", "Uppsala", "Leiden",
                  "Geneva", "Boston", "Zurich"),
    },
}


class Topic(GeneratedTask):
    """Topic: one-sentence news headlines from templates, each topic with its own vocabulary."""

    name = "topic"
    description = "Four-way topic of template news headlines (world, sports, business, science)."
    kind = "multiple_choice"
    labels = ("world", "sports", "business", "science")
    abilities = ("nlu",)

    def generate(self, rng: random.Random) -> Example:
        label = rng.randrange(len(self.labels))
        vocab = VOCAB[self.labels[label]]
        actor, actor2 = rng.sample(vocab["actor"], 2)
        template = rng.choice(SHARED + vocab["templates"])
        headline = template.format(actor=actor, actor2=actor2, thing=rng.choice(vocab["thing"]),
                                   place=rng.choice(vocab["place"]))
        headline = headline[0] + headline[1:].replace(" The ", " the ")  # "says the lab"
        return classification_example(f"Headline: {headline}\nTopic:", self.labels, label)


@hookimpl
def register_tasks(register):
    register(Topic)
