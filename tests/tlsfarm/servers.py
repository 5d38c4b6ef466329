"""Stock servers with the configs a test gives them: nginx, Apache mod_ssl, HAProxy (TLS
termination, or TCP round robin in front of a farm's nodes)."""

import os
import subprocess
import tempfile

from tlsfarm.supervisor import (built, free_port, preload_environment, require,
                                wait_for_port)


# The nodes of a farm, one loopback address each (one port, as a real farm).
NODE_IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]


class ServerConfigs:
    """The stock TLS servers and load balancer of a farm, each with the config it runs: mixed
    into Farm, whose start(), dir, cert and key they use."""

    def nginx(self, ip, port, name, env=None, shared_cache=False, workers=2, tickets=False,
              directives="", blocks=None, sni_blocks=None, ticket_settings=None):
        """Stock nginx (master and `workers` workers) serving TLS on ip:port; with `env`, run
        with the tlscache preload library and those TLSCACHE_* variables. `directives` go
        into the server block (after the ticket and cache settings). `blocks` adds
        server blocks: {port: directives}, each answering like the first and naming its
        port and $ssl_client_verify. `sni_blocks` adds server blocks on the same port that
        SNI selects: {server_name: directives}, each naming itself; those directives replace
        the ticket and cache settings. `ticket_settings` replaces `tickets` as nginx reads it
        (None: "ssl_session_tickets off;" unless `tickets`; "" is nginx's default)."""
        prefix = os.path.join(self.dir, name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        config = os.path.join(prefix, "nginx.conf")
        cache = "ssl_session_cache shared:SSL:10m;" if shared_cache else ""
        if ticket_settings is None:
            ticket_settings = "" if tickets else "ssl_session_tickets off;"  # nginx's default: on

        def server(block_port, settings, reply, server_name="", ticket_lines=ticket_settings):
            return f"""
  server {{
    listen {ip}:{block_port} ssl;
    {f"server_name {server_name};" if server_name else ""}
    ssl_certificate {self.cert};
    ssl_certificate_key {self.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    {ticket_lines}
    {settings}
    location / {{
      return 200 "node {name} {reply}pid $pid $ssl_protocol $ssl_session_reused\n";
    }}
  }}"""

        servers = server(port, f"{cache}\n    {directives}", "") + "".join(
            server(block_port, block_directives, f"port {block_port} $ssl_client_verify ")
            for block_port, block_directives in (blocks or {}).items()) + "".join(
            server(port, block_directives, f"sni {server_name} $ssl_client_verify ",
                   server_name=server_name, ticket_lines="")
            for server_name, block_directives in (sni_blocks or {}).items())
        with open(config, "w") as f:
            f.write(f"""daemon off;
master_process on;
worker_processes {workers};
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;{servers}
}}
""")
        argv = [require("nginx"), "-p", prefix, "-c", config, "-e", f"{prefix}/logs/error.log"]
        process = self.start(name, argv, env=preload_environment(env))
        wait_for_port(ip, port, process=process.popen)
        process.config = config
        process.prefix = prefix
        process.ip = ip
        return process

    def apache(self, ip, port, name, session_cache="none", ticket_key_file=None):
        """Stock Apache httpd (event MPM) with mod_ssl serving TLS on ip:port, with
        `session_cache` as its SSLSessionCache ("redis:127.0.0.1:6379", "shmcb:PATH(SIZE)").
        Every node has the same ServerName and port, so the same session ID context: a session
        resumes on any node that finds it in the cache. Tickets are off, so TLS 1.3 resumes
        through the cache too; with `ticket_key_file`, tickets are on under the 48-byte key
        in that file (SSLSessionTicketKeyFile). The process has .config (for `-k graceful`)."""
        apache2 = require("apache2")
        modules = "/usr/lib/apache2/modules"
        prefix = os.path.join(self.dir, name)
        os.makedirs(os.path.join(prefix, "htdocs"), exist_ok=True)
        with open(os.path.join(prefix, "htdocs", "index.html"), "w") as f:
            f.write(f"node {name}\n")
        config = os.path.join(prefix, "apache2.conf")
        loads = "\n".join(f"LoadModule {module}_module {modules}/mod_{module}.so"
                          for module in ("mpm_event", "authz_core", "dir", "socache_shmcb",
                                         "socache_redis", "ssl"))
        with open(config, "w") as f:
            f.write(f"""ServerRoot {prefix}
{loads}
DefaultRuntimeDir {prefix}
PidFile {prefix}/apache2.pid
ErrorLog {prefix}/error.log
LogLevel warn
User www-data
Group www-data
ServerName farm.test
Listen {ip}:{port}
KeepAlive Off
StartServers 2
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
DocumentRoot {prefix}/htdocs
DirectoryIndex index.html
<Directory {prefix}/htdocs>
  Require all granted
</Directory>
SSLEngine on
SSLCertificateFile {self.cert}
SSLCertificateKeyFile {self.key}
SSLProtocol -all +TLSv1.2 +TLSv1.3
{f"SSLSessionTicketKeyFile {ticket_key_file}" if ticket_key_file else "SSLSessionTickets off"}
SSLSessionCache {session_cache}
SSLSessionCacheTimeout 300
""")
        os.chmod(prefix, 0o755)
        os.chmod(os.path.join(prefix, "htdocs"), 0o755)
        os.chmod(self.dir, 0o755)
        process = self.start(name, [apache2, "-f", config, "-DFOREGROUND"])
        wait_for_port(ip, port, process=process.popen)
        process.config = config
        return process

    def haproxy_tls(self, ip, port, name, env=None, bind_options="", admin_socket=None):
        """HAProxy terminating TLS on ip:port and answering itself; with `env`, run with the
        tlscache preload library and those TLSCACHE_* variables. `bind_options` go on its
        bind line (say, "no-tls-tickets" or "tls-ticket-keys FILE"). With `admin_socket`, its
        runtime API listens there (a stats socket at level admin)."""
        pem = os.path.join(self.dir, "haproxy.pem")
        if not os.path.exists(pem):
            with open(pem, "w") as f:
                f.write(open(self.cert).read() + open(self.key).read())
        config = self._haproxy_config(f"{name}.cfg", "http", f"""frontend tls
  bind {ip}:{port} ssl crt {pem} {bind_options}
  http-request return status 200 content-type text/plain lf-string "node {name} pid %pid %[ssl_fc_protocol] %[ssl_fc_is_resumed]"
""", global_lines=f"  stats socket {admin_socket} level admin\n" if admin_socket else "")
        process = self.start(name, [require("haproxy"), "-f", config, "-db"],
                             env=preload_environment(env))
        wait_for_port(ip, port, process=process.popen)
        return process

    def _haproxy_config(self, file_name, mode, sections, global_lines=""):
        config = os.path.join(self.dir, file_name)
        with open(config, "w") as f:
            f.write(f"""global
  maxconn 2000
{global_lines}defaults
  mode {mode}
  timeout connect 2s
  timeout client 10s
  timeout server 10s
{sections}""")
        return config


    def haproxy(self, backend_port):
        """HAProxy in TCP mode, strict round robin over the three nodes. Returns its port."""
        port = free_port()
        servers = "\n".join(f"  server node{i + 1} {ip}:{backend_port}"
                            for i, ip in enumerate(NODE_IPS))
        config = self._haproxy_config("haproxy.cfg", "tcp", f"""frontend tls
  bind 127.0.0.1:{port}
  default_backend farm
backend farm
  balance roundrobin
{servers}
""")
        process = self.start("haproxy", [require("haproxy"), "-f", config, "-db"])
        wait_for_port("127.0.0.1", port, process=process.popen)
        return port

    def keysync(self, cache_addr, name, key_format, on_change=None, haproxy_socket=None,
                extra=()):
        """tlscache-keysync for one server: `--once` into a fresh directory on tmpfs (the
        files a server needs before it starts), then the daemon that keeps them current
        (started by start_keysync, once the server runs). Returns the directory."""
        directory = tempfile.mkdtemp(prefix=f"tlscache-keys-{name}-", dir="/dev/shm")
        self.key_dirs.append(directory)
        common = [built("tlscache-keysync"), f"--addr={cache_addr}", "--namespace=default",
                  f"--format={key_format}", f"--dir={directory}"]
        subprocess.run([*common, "--once"], check=True, capture_output=True, timeout=30)
        argv = [*common, f"--follower={name}",
                f"--metrics_file={os.path.join(self.dir, name + '.prom')}", *extra]
        if on_change:
            argv.append(f"--on_change={on_change}")
        if haproxy_socket:
            argv.append(f"--haproxy_socket={haproxy_socket}")
        self.keysync_argv[name] = argv
        return directory

    def start_keysync(self, name):
        """Starts the keysync daemon set up by keysync(name, ...)."""
        return self.start(name, self.keysync_argv[name])
