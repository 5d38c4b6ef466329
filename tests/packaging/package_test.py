"""The Debian packages of `make package` (build/packages/), checked as an operator and a
developer meet them: lintian finds no error and no warning that is not overridden with its
reason; installed with dpkg into a fresh root (`dpkg --root`, maintainer scripts run outside
a chroot with DPKG_ROOT, as no systemd runs here), every file lands where its package says,
the system user and the private directory exist, the installed server checks its packaged
flags and serves a Put and a Get on loopback, systemd-analyze verifies the unit and the
drop-ins, a C program built only from the -dev package (pkg-config, then CMake's
find_package) resumes a session through the installed server, and stock nginx started with
the nginx drop-in's environment resumes across two nodes; and the maintainer scripts, run as
on a host where systemd runs (a private mount namespace, systemd's tools recording their
calls), start the service on a first install, restart nothing on an upgrade unless asked,
fail the install when a start fails, and keep what the operator set in /etc/tlscache."""

import glob
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(__file__)
import tlsfarm
from tlsfarm.testcase import FarmTestCase

BUILD_DIR = os.path.dirname(os.path.abspath(tlsfarm.BIN_DIR))
PACKAGES = os.path.join(BUILD_DIR, "packages")
NAMES = ("tlscache-server", "libtlscache-openssl", "libtlscache-openssl-dev", "tlscache-keysync")
LIBDIR = "usr/lib/x86_64-linux-gnu"


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited with {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result.stdout


def deb(name):
    found = glob.glob(os.path.join(PACKAGES, f"{name}_*.deb"))
    if len(found) != 1:
        raise AssertionError(f"{name}: {found or 'no package'} in {PACKAGES} (make package)")
    return found[0]


class PackagesTest(FarmTestCase):
    @classmethod
    def setUpClass(cls):
        tlsfarm.require("dpkg")
        cls.root = tempfile.mkdtemp(prefix="tlscache-root-")
        admin = os.path.join(cls.root, "var", "lib", "dpkg")
        for directory in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(admin, directory))
        for name in ("status", "available"):
            open(os.path.join(admin, name), "w").close()
        # Nothing else is installed in the root: its dependencies are this machine's.
        run(["dpkg", f"--root={cls.root}", "--force-script-chrootless", "--force-depends",
             "--log=/dev/null", "-i", *[deb(name) for name in NAMES]])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def installed(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def server(self):
        """The installed server, on its packaged flags, on a free loopback port."""
        port = tlsfarm.free_port()
        process = self.farm.start("installed-server", [
            self.installed("/usr/sbin/tlscache-server"),
            f"--flagfile={self.installed('/etc/tlscache/server.flags')}",
            f"--listen=127.0.0.1:{port}", "--metrics_listen="])
        tlsfarm.wait_for_port("127.0.0.1", port, process=process.popen)
        return f"127.0.0.1:{port}"

    def test_lintian_finds_no_error_and_no_warning(self):
        lintian = tlsfarm.require("lintian")
        for name in NAMES:
            result = subprocess.run([lintian, "--fail-on", "error,warning", "--display-level",
                                     ">=warning", deb(name)], capture_output=True, text=True,
                                    timeout=300)
            self.assertEqual(result.returncode, 0, f"{name}:\n{result.stdout}{result.stderr}")
            overridden = run([lintian, "--show-overrides", "--display-level", ">=warning",
                              deb(name)]).count("O: ")
            self.report(f"{name}: lintian clean ({overridden} warnings overridden, each with "
                        "its reason)")

    def test_every_file_lands_where_its_package_says(self):
        for name in NAMES:
            # "MODE OWNER SIZE DATE TIME PATH[ -> TARGET]"
            listed = [line.split()[5] for line in run(["dpkg-deb", "-c", deb(name)]).splitlines()]
            files = [path for path in listed if not path.endswith("/")]
            self.assertTrue(files, name)
            for path in files:
                self.assertTrue(os.path.lexists(self.installed(path.lstrip("."))), path)
        for path in ("/usr/sbin/tlscache-server", "/usr/bin/tlscachectl",
                     "/etc/tlscache/server.flags", "/lib/systemd/system/tlscache-server.service",
                     "/usr/lib/sysusers.d/tlscache.conf", f"/{LIBDIR}/libtlscache_openssl.so.1",
                     f"/{LIBDIR}/tlscache/libtlscache_preload.so",
                     "/usr/include/tlscache/openssl.h",
                     f"/{LIBDIR}/pkgconfig/tlscache-openssl.pc",
                     f"/{LIBDIR}/cmake/tlscache/tlscacheConfig.cmake",
                     "/usr/bin/tlscache-keysync", "/lib/systemd/system/tlscache-keysync@.service",
                     "/usr/share/doc/tlscache-keysync/examples/keysync-nginx.flags"):
            self.assertTrue(os.path.exists(self.installed(path)), path)
        # The maintainer scripts made the user, the private directory and the unit's link.
        with open(self.installed("/etc/group")) as f:
            gid = next(int(line.split(":")[2]) for line in f if line.startswith("tlscache:"))
        private = os.stat(self.installed("/etc/tlscache/private"))
        self.assertEqual((private.st_mode & 0o7777, private.st_uid, private.st_gid),
                         (0o750, 0, gid))
        self.assertTrue(os.path.islink(self.installed(
            "/etc/systemd/system/multi-user.target.wants/tlscache-server.service")))

    def test_the_library_exports_exactly_the_symbols_its_package_declares(self):
        library = self.installed(f"/{LIBDIR}/libtlscache_openssl.so.1")
        dynamic = run(["readelf", "--dyn-syms", "--wide", library])
        # "name@@TLSCACHE_1" for a function, the bare node name for the version node itself:
        # written as the symbols file writes them.
        exported = sorted(name.replace("@@", "@") if "@" in name else f"{name}@{name}"
                          for name in (line.split()[-1] for line in dynamic.splitlines()
                                       if " GLOBAL " in line and " UND " not in line))
        with open(os.path.join(HERE, "..", "..", "packaging", "debian", "libtlscache-openssl",
                               "symbols")) as f:
            declared = sorted(line.split()[0] for line in f if line.startswith(" "))
        self.assertEqual(exported, declared)
        self.assertRegex(run(["readelf", "-d", library]),
                         r"\(SONAME\)\s+Library soname: \[libtlscache_openssl\.so\.1\]")

    def test_the_installed_server_checks_its_flags_and_serves_a_put_and_a_get(self):
        server = self.installed("/usr/sbin/tlscache-server")
        flags = self.installed("/etc/tlscache/server.flags")
        out = run([server, "--dry_run", f"--flagfile={flags}"])
        self.assertIn("memory", out)
        addr = self.server()
        session = os.path.join(self.farm.dir, "session")
        with open(session, "wb") as f:
            f.write(b"installed-session-bytes")
        ctl = [self.installed("/usr/bin/tlscachectl"), f"--addr={addr}", "--namespace=pkg"]
        run([*ctl, "put", "0a0b0c", session])
        out = run([*ctl, "get", "0a0b0c"])
        self.assertIn("23 bytes", out)

    def test_systemd_analyze_verifies_the_unit_and_the_drop_ins(self):
        analyze = tlsfarm.require("systemd-analyze")
        # The root stands for a Debian system: systemd's units and /bin/kill (procps), and
        # Debian's nginx and HAProxy (their units are among systemd's, their binaries here).
        run(["cp", "-an", "/lib/systemd/system/.", self.installed("/lib/systemd/system/")])
        for binary in ("/bin/kill", tlsfarm.require("nginx"), tlsfarm.require("haproxy")):
            os.makedirs(os.path.dirname(self.installed(binary)), exist_ok=True)
            shutil.copy(binary, self.installed(binary))
        # The manual page is checked here, not by systemd-analyze (it would ask this system's
        # man for it).
        for page in ("man8/tlscache-server.8.gz", "man1/tlscache-keysync.1.gz"):
            run(["man", "-l", "-Tutf8", self.installed(f"/usr/share/man/{page}")])
        verify = [analyze, "verify", "--man=no", f"--root={self.root}"]
        result = subprocess.run([*verify, "tlscache-server.service"], capture_output=True,
                                text=True, timeout=120)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))
        # systemd's own rating of the sandbox: 0 (tight) to 10 (none).
        exposure = {}
        for unit in ("tlscache-server", "nginx"):
            rating = run([analyze, "security", "--offline=yes", f"--root={self.root}",
                          f"{unit}.service"])
            exposure[unit] = float(rating.split("Overall exposure level for ")[1].split()[1])
        self.report(f"systemd-analyze security: tlscache-server.service "
                    f"{exposure['tlscache-server']}, Debian's nginx.service {exposure['nginx']}")
        self.assertLessEqual(exposure["tlscache-server"], 2.0)
        examples = self.installed("/usr/share/doc/libtlscache-openssl/examples")
        shutil.copy(os.path.join(examples, "tlscache-preload.env"),
                    self.installed("/etc/tlscache/preload.env"))
        for unit in ("nginx", "haproxy"):
            drop_in = self.installed(f"/etc/systemd/system/{unit}.service.d")
            os.makedirs(drop_in, exist_ok=True)
            shutil.copy(os.path.join(examples, f"{unit}.service.d", "tlscache.conf"), drop_in)
            # systemd-analyze reads the drop-in with the unit: a wrong key or section in it
            # would be a warning here.
            result = subprocess.run([*verify, f"{unit}.service"], capture_output=True,
                                    text=True, timeout=120)
            self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""), unit)
            with open(os.path.join(drop_in, "tlscache.conf")) as f:
                self.assertIn(f"Environment=LD_PRELOAD=/{LIBDIR}/tlscache/libtlscache_preload.so",
                              f.read())
        # The keysync template, an instance for nginx, its example flags in place.
        shutil.copy(self.installed("/usr/share/doc/tlscache-keysync/examples/keysync-nginx.flags"),
                    self.installed("/etc/tlscache/keysync-nginx.flags"))
        result = subprocess.run([*verify, "tlscache-keysync@nginx.service"], capture_output=True,
                                text=True, timeout=120)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))

    def consumer_environment(self):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.installed(f"/{LIBDIR}")
        return env

    def test_a_c_program_built_with_pkg_config_resumes_through_the_installed_server(self):
        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=self.root,
                   PKG_CONFIG_PATH=self.installed(f"/{LIBDIR}/pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "tlscache-openssl"], env=env).split()
        self.assertIn("-ltlscache_openssl", flags)
        program = os.path.join(self.farm.dir, "resume")
        run(["cc", "-Wall", "-Werror", os.path.join(HERE, "consumer", "resume.c"), "-o",
             program, *flags])
        out = run([program, self.server(), self.farm.cert, self.farm.key],
                  env=self.consumer_environment())
        self.report(f"pkg-config: {' '.join(flags)}; {out.strip()}")

    def test_a_c_program_built_with_find_package_resumes_through_the_installed_server(self):
        build = os.path.join(self.farm.dir, "consumer")
        run(["cmake", "-S", os.path.join(HERE, "consumer"), "-B", build, "-G", "Ninja",
             f"-DCMAKE_PREFIX_PATH={self.installed('/usr')}"])
        run(["cmake", "--build", build])
        out = run([os.path.join(build, "resume"), self.server(), self.farm.cert,
                   self.farm.key], env=self.consumer_environment())
        self.report(f"find_package(tlscache CONFIG): {out.strip()}")

    def maintainer_script(self, package, script, *args, start_fails=False, installed=False):
        """Runs the installed `package`'s maintainer `script` as dpkg runs it on a host where
        systemd runs: in a private mount namespace where /run/systemd/system exists and /etc
        is this machine's under an overlay whose changes land in self.etc (kept from one call
        to the next, as a host's /etc is), with deb-systemd-helper, deb-systemd-invoke,
        systemctl and systemd-sysusers standing in for systemd (they record their calls; a
        start or restart fails with start_fails; the unit was installed before with
        installed). Returns (exit code, output, the calls)."""
        tlsfarm.require("unshare")
        work = tempfile.mkdtemp(prefix="tlscache-maint-", dir=self.workdir)
        stubs = os.path.join(work, "stubs")
        calls = os.path.join(work, "calls")
        os.makedirs(stubs)
        for name in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl",
                     "systemd-sysusers"):
            with open(os.path.join(stubs, name), "w") as f:
                f.write(f"#!/bin/sh\necho \"{name} $*\" >> {calls}\n"
                        f"case \"$*\" in\n"
                        f"  'debian-installed '*) exit {0 if installed else 1} ;;\n"
                        f"  'start '* | 'restart '*) exit {1 if start_fails else 0} ;;\n"
                        f"  'is-active '* | '--quiet is-active '*) exit 0 ;;\n"
                        f"esac\n")
                if name == "systemd-sysusers":  # creates the group as the real one does
                    f.write("grep -q '^tlscache:' /etc/group || "
                            "echo 'tlscache:x:990:' >> /etc/group\n")
            os.chmod(os.path.join(stubs, name), 0o755)
        path = self.installed(f"/var/lib/dpkg/info/{package}.{script}")
        result = subprocess.run(
            ["unshare", "-m", "sh", "-c",
             'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system "$1/w" && '
             'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$2,workdir=$1/w" /etc && '
             'shift 2 && PATH="$0:$PATH" exec sh "$@"',
             stubs, work, self.etc, path, *args],
            capture_output=True, text=True, timeout=60)
        recorded = open(calls).read().splitlines() if os.path.exists(calls) else []
        return result.returncode, result.stdout + result.stderr, recorded

    def etc_path(self, path):
        return os.path.join(self.etc, path.lstrip("/").removeprefix("etc/"))

    def test_an_upgrade_restarts_nothing_and_keeps_what_the_operator_set(self):
        self.workdir = tempfile.mkdtemp(prefix="tlscache-etc-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.etc = os.path.join(self.workdir, "etc")
        os.makedirs(self.etc)
        # A first install starts the service, and creates the private directory.
        code, output, calls = self.maintainer_script("tlscache-server", "postinst", "configure",
                                                     "")
        self.assertEqual(code, 0, output)
        self.assertIn("deb-systemd-invoke start tlscache-server.service", calls)
        private = self.etc_path("/etc/tlscache/private")
        self.assertEqual(oct(os.stat(private).st_mode & 0o777), "0o750")
        # The operator opens it to another group (and puts a key in the client directory).
        os.chmod(private, 0o710)
        code, output, calls = self.maintainer_script("libtlscache-openssl", "postinst",
                                                     "configure", "")
        self.assertEqual(code, 0, output)
        client = self.etc_path("/etc/tlscache/client")
        self.assertEqual(oct(os.stat(client).st_mode & 0o777), "0o755")
        with open(os.path.join(client, "client.key"), "w") as f:
            f.write("key")
        os.chown(os.path.join(client, "client.key"), 0, 33)  # www-data
        os.chmod(os.path.join(client, "client.key"), 0o640)
        os.chmod(client, 0o750)
        # An upgrade: no restart (the memory store would lose every session), a word saying
        # so, and nothing the operator set undone.
        code, output, calls = self.maintainer_script(
            "tlscache-server", "postinst", "configure", "0.0.9", installed=True)
        self.assertEqual(code, 0, output)
        self.assertFalse([c for c in calls if c.startswith("deb-systemd-invoke")], calls)
        self.assertIn("keeps running version 0.0.9 until restarted", output)
        code, output, _ = self.maintainer_script("libtlscache-openssl", "postinst", "configure",
                                                 "0.0.9")
        self.assertEqual(code, 0, output)
        self.assertEqual(oct(os.stat(private).st_mode & 0o777), "0o710")
        self.assertEqual(oct(os.stat(client).st_mode & 0o777), "0o750")
        key = os.stat(os.path.join(client, "client.key"))
        self.assertEqual((key.st_gid, oct(key.st_mode & 0o777)), (33, "0o640"))
        # Asked to restart on upgrade, it does; a restart that fails fails the upgrade.
        with open(self.installed("/etc/default/tlscache-server")) as f:
            default = f.read()
        self.assertIn("RESTART_ON_UPGRADE=no", default)
        os.makedirs(self.etc_path("/etc/default"), exist_ok=True)
        with open(self.etc_path("/etc/default/tlscache-server"), "w") as f:
            f.write(default.replace("RESTART_ON_UPGRADE=no", "RESTART_ON_UPGRADE=yes"))
        code, output, calls = self.maintainer_script(
            "tlscache-server", "postinst", "configure", "0.0.9", installed=True)
        self.assertEqual(code, 0, output)
        self.assertIn("deb-systemd-invoke restart tlscache-server.service", calls)
        code, output, calls = self.maintainer_script(
            "tlscache-server", "postinst", "configure", "0.0.9", installed=True,
            start_fails=True)
        self.assertNotEqual(code, 0)
        self.assertIn("did not restart after the upgrade from 0.0.9", output)
        # So does a first start that fails.
        code, output, _ = self.maintainer_script("tlscache-server", "postinst", "configure", "",
                                                 start_fails=True)
        self.assertNotEqual(code, 0)
        self.assertIn("tlscache-server did not start", output)

    def test_stock_nginx_with_the_drop_in_resumes_across_two_nodes(self):
        examples = self.installed("/usr/share/doc/libtlscache-openssl/examples")
        env = {}
        with open(os.path.join(examples, "nginx.service.d", "tlscache.conf")) as f:
            drop_in = f.read()
        # As systemd would set them: the drop-in's Environment=, then its EnvironmentFile=
        # (the example file, copied to where the drop-in reads it, with this test's address).
        env_files = []
        for line in drop_in.splitlines():
            if line.startswith("Environment="):
                key, value = line.split("=", 1)[1].split("=", 1)
                env[key] = value
            elif line.startswith("EnvironmentFile="):
                env_files.append(line.split("=", 1)[1])
        self.assertEqual(env_files, ["/etc/tlscache/preload.env"])
        with open(os.path.join(examples, "tlscache-preload.env")) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    env[key] = value
        self.assertIn("TLSCACHE_ADDR", env)
        env["TLSCACHE_ADDR"] = self.server()
        env["LD_PRELOAD"] = self.installed(env["LD_PRELOAD"])  # the root's copy
        port = tlsfarm.free_port(tlsfarm.NODE_IPS[:2])
        for index, ip in enumerate(tlsfarm.NODE_IPS[:2]):
            self.farm.nginx(ip, port, f"nginx{index + 1}", env=env, tickets=True)
        for name, version in (("TLSv1.2", ssl.TLSVersion.TLSv1_2),
                              ("TLSv1.3", ssl.TLSVersion.TLSv1_3)):
            client = tlsfarm.Client(version, single_use=True)
            client.connect(tlsfarm.NODE_IPS[0], port)
            resumed = sum(client.connect(tlsfarm.NODE_IPS[(i + 1) % 2], port)[0]
                          for i in range(20))
            self.report(f"{name}: {resumed} of 20 reconnects alternating between the two "
                        "nginx nodes resumed")
            self.assertEqual(resumed, 20, name)


if __name__ == "__main__":
    unittest.main()
