"""The source tree's layers, held to their order: every #include "..." of our own code points
down (or across within its folder), and no file includes itself back through others.

A layer is a folder; each may include the layers listed for it and its own files. The order is
the one the CMake libraries link in (server/CMakeLists.txt, the top CMakeLists.txt): a file that
includes upward compiles today and makes a cycle of libraries tomorrow.
"""

import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> the folders its files may include (besides their own and generated protos)
LAYERS = {
    'common': [],
    'server/security': ['common'],
    'server/observability': ['common'],
    'server/store': ['common', 'server/security', 'server/observability'],
    'server/store/redis': ['common', 'server/security', 'server/observability', 'server/store'],
    'server/tickets': ['common', 'server/security', 'server/observability', 'server/store'],
    'server/sessions': ['common', 'server/security', 'server/observability', 'server/store'],
    'server': ['common', 'server/security', 'server/observability', 'server/store',
               'server/store/redis', 'server/tickets', 'server/sessions'],
    'client': ['common'],
    'plugins/openssl': ['common', 'client', 'plugins/openssl/include/tlscache'],
    'plugins/openssl/include/tlscache': [],
    'tools/tlscachectl': ['common', 'client'],
    'tools/keysync': ['common', 'client'],
    'tools/tls_server': ['common', 'client', 'plugins/openssl',
                         'plugins/openssl/include/tlscache'],
    'bench': ['common', 'client', 'plugins/openssl', 'plugins/openssl/include/tlscache',
              'server/security', 'server/observability', 'server/store', 'server/tickets',
              'server/sessions', 'server'],
}

# Files that sit in a folder but above it: the factory of --store builds every backend.
ABOVE = {
    'server/store/store_factory': LAYERS['server/store'] + ['server/store/redis'],
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for folder in LAYERS:
        path = os.path.join(ROOT, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if name.endswith(('.h', '.cc')):
                yield os.path.join(folder, name)


def includes(source):
    with open(os.path.join(ROOT, source)) as f:
        text = f.read()
    for target in INCLUDE.findall(text):
        if target.startswith('tlscache/') and os.path.exists(
                os.path.join(ROOT, 'plugins/openssl/include', target)):
            yield 'plugins/openssl/include/' + target
        elif os.path.exists(os.path.join(ROOT, target)):
            yield target
        # Anything else is generated (protos) or a library's: not ours to order.


class LayeringTest(unittest.TestCase):

    def test_every_include_points_down_or_across(self):
        upward = []
        for source in sources():
            layer = os.path.dirname(source)
            allowed = ABOVE.get(os.path.splitext(source)[0], LAYERS[layer])
            for target in includes(source):
                to = os.path.dirname(target)
                if to != layer and to not in allowed:
                    upward.append(f'{source} includes {target}')
        self.assertEqual(upward, [], 'includes against the layer order')

    def test_no_file_includes_itself_through_others(self):
        graph = {source: list(includes(source)) for source in sources()}
        cycles = []
        state = {}  # 1: on the current path, 2: done

        def visit(node, path):
            state[node] = 1
            path.append(node)
            for target in graph.get(node, []):
                if state.get(target) == 1:
                    cycles.append(' -> '.join(path[path.index(target):] + [target]))
                elif state.get(target) is None:
                    visit(target, path)
            path.pop()
            state[node] = 2

        for source in graph:
            if source not in state:
                visit(source, [])
        self.assertEqual(cycles, [], 'include cycles')

    def test_the_layers_named_are_the_folders_there_are(self):
        # A new folder of sources gets a place in the order, or this test says so.
        unplaced = []
        for top in ('common', 'server', 'client', 'plugins', 'tools', 'bench'):
            for folder, _, files in os.walk(os.path.join(ROOT, top)):
                rel = os.path.relpath(folder, ROOT)
                if any(f.endswith(('.h', '.cc')) for f in files) and rel not in LAYERS:
                    unplaced.append(rel)
        self.assertEqual(unplaced, [])


if __name__ == '__main__':
    unittest.main()
