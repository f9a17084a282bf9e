"""The embedded default configuration (flowd/data/default.yaml) parsed: written by
``python -m flowd.config.loader > flowd/config/default_tree.py``; edit the YAML text, not this file."""

from __future__ import annotations

from typing import Any

from flowd.syntax.junos import Key, KeyPath


def tree() -> dict[Key, Any]:
    """A new copy of the statement tree."""
    return {
        'forwarding-options': {
            'sampling': {
                'input': {'rate': 1, 'run-length': 0},
                'family': {
                    'inet': {
                        'output': {
                            'flow-server': {'127.0.0.1': {'port': 2055, 'version': 5}},
                            'flow-active-timeout': 60,
                            'flow-inactive-timeout': 15,
                            'interface': {
                                'sp-2/0/0': {'engine-id': 5, 'engine-type': 55, 'source-address': '127.0.0.1'},
                            },
                        },
                    },
                },
            },
        },
        'interfaces': {'ge-2/3/0': {'unit': {0: {'family': {'inet': {'filter': {'input': 'catch_all'}}}}}}},
        'firewall': {
            'family': {
                'inet': {
                    'filter': {
                        'catch_all': {
                            'term': {
                                'default': {'then': {'sample': True, 'count': 'counter1', 'accept': True}},
                            },
                        },
                    },
                },
            },
        },
        'flowd': {'interface-map': {'ge-2/3/0': 'lo'}, 'flow-table': {'max-flows': 1000000}},
    }


def lines() -> dict[KeyPath, int]:
    """The line of every key path in the text."""
    return {
        ('forwarding-options',): 8,
        ('forwarding-options', 'sampling'): 9,
        ('forwarding-options', 'sampling', 'input'): 10,
        ('forwarding-options', 'sampling', 'input', 'rate'): 11,
        ('forwarding-options', 'sampling', 'input', 'run-length'): 12,
        ('forwarding-options', 'sampling', 'family'): 15,
        ('forwarding-options', 'sampling', 'family', 'inet'): 16,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output'): 18,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-server'): 19,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-server', '127.0.0.1'): 20,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-server', '127.0.0.1', 'port'): 21,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-server', '127.0.0.1', 'version'): 22,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-active-timeout'): 26,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'flow-inactive-timeout'): 27,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'interface'): 28,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'interface', 'sp-2/0/0'): 29,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'interface', 'sp-2/0/0', 'engine-id'): 30,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'interface', 'sp-2/0/0', 'engine-type'): 31,
        ('forwarding-options', 'sampling', 'family', 'inet', 'output', 'interface', 'sp-2/0/0', 'source-address'): 32,
        ('interfaces',): 38,
        ('interfaces', 'ge-2/3/0'): 39,
        ('interfaces', 'ge-2/3/0', 'unit'): 40,
        ('interfaces', 'ge-2/3/0', 'unit', 0): 41,
        ('interfaces', 'ge-2/3/0', 'unit', 0, 'family'): 42,
        ('interfaces', 'ge-2/3/0', 'unit', 0, 'family', 'inet'): 43,
        ('interfaces', 'ge-2/3/0', 'unit', 0, 'family', 'inet', 'filter'): 44,
        ('interfaces', 'ge-2/3/0', 'unit', 0, 'family', 'inet', 'filter', 'input'): 45,
        ('firewall',): 48,
        ('firewall', 'family'): 49,
        ('firewall', 'family', 'inet'): 50,
        ('firewall', 'family', 'inet', 'filter'): 51,
        ('firewall', 'family', 'inet', 'filter', 'catch_all'): 52,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term'): 53,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term', 'default'): 54,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term', 'default', 'then'): 59,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term', 'default', 'then', 'sample'): 60,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term', 'default', 'then', 'count'): 61,
        ('firewall', 'family', 'inet', 'filter', 'catch_all', 'term', 'default', 'then', 'accept'): 62,
        ('flowd',): 74,
        ('flowd', 'interface-map'): 75,
        ('flowd', 'interface-map', 'ge-2/3/0'): 76,
        ('flowd', 'flow-table'): 77,
        ('flowd', 'flow-table', 'max-flows'): 78,
    }
