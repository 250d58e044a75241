"""Rule types by family, each module with its config classes, titles and judgement (the
contract: rules/base.py RuleBase); rules/registry.py lists them."""
