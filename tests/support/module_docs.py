"""One check that a module's DOCUMENTATION (with its doc fragments) says exactly what its argument spec takes."""

import yaml


def assert_documentation_matches_the_spec(module, fragments, secrets=()):
    """Every option documented and taken alike (type, default, choices, elements, required), the fragments named
    first in ``extends_documentation_fragment`` in that order, ``secrets`` no_log, EXAMPLES and RETURN YAML.
    ``fragments``: ``{"ferry.migrate.name": ModuleDocFragment class}``. Returns RETURN, parsed."""
    docs = yaml.safe_load(module.DOCUMENTATION)
    options = dict(docs["options"])
    for fragment in fragments.values():
        options.update(yaml.safe_load(fragment.DOCUMENTATION)["options"])
    assert docs["extends_documentation_fragment"][:len(fragments)] == list(fragments)
    spec = module.argument_spec()
    assert sorted(options) == sorted(spec)
    for name, option in spec.items():
        doc = options[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
    for secret in secrets:
        assert spec[secret]["no_log"] is True, secret
    yaml.safe_load(module.EXAMPLES)
    return yaml.safe_load(module.RETURN)


def with_defaults(module, **values):
    """A module's parameters as Ansible hands them to ``run``: every option at its default, then ``values``."""
    params = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    params.update(values)
    return params
