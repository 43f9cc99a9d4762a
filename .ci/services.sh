# shellcheck shell=bash
# Sourced by .ci/run, and usable by hand (`. .ci/services.sh`): installs Debian's PostgreSQL and Chromium when
# they are missing, starts a throwaway PostgreSQL server on loopback (or finds the one a previous run left), and
# exports what the tests read:
#   DOGCAT_TEST_POSTGRES  SQLAlchemy URL of a database on it; the tests create their own databases beside it
#   DOGCAT_TEST_CHROMIUM  the browser the report tests drive headless
# Quiet unless something fails. Safe to source again: a running server is reused.

dogcat_services() {
    local sudo="" pgbin pgroot port=${DOGCAT_CI_PGPORT:-54329} password=dogcat-ci
    [ "$(id -u)" = 0 ] || sudo=sudo
    # qemu-user: tests/test_same_answer.py runs the model on an emulated AVX2-only CPU (qemu-x86_64 -cpu Haswell).
    if ! command -v chromium >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
            || ! command -v qemu-x86_64 >/dev/null 2>&1; then
        $sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            postgresql chromium fonts-dejavu-core qemu-user >/dev/null
    fi
    pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
    pgroot=${DOGCAT_CI_PGDATA:-/tmp/dogcat-ci-postgres}

    # PostgreSQL refuses to run as root: as root, run it as the "postgres" user the package created.
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

    if ! as_pg "$pgbin/pg_ctl" -D "$pgroot/data" status >/dev/null 2>&1; then
        rm -rf "$pgroot"
        mkdir -p "$pgroot"
        printf '%s\n' "$password" >"$pgroot/password"
        [ "$(id -u)" = 0 ] && chown -R postgres: "$pgroot"
        as_pg "$pgbin/initdb" -D "$pgroot/data" -U dogcat --pwfile="$pgroot/password" --auth=scram-sha-256 \
            --no-sync -E UTF8 --locale=C.UTF-8 >"$pgroot/initdb.log" 2>&1 \
            || { cat "$pgroot/initdb.log" >&2; return 1; }
        # Loopback only; fsync off: the data is thrown away after the run.
        as_pg "$pgbin/pg_ctl" -D "$pgroot/data" -l "$pgroot/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $pgroot -c fsync=off -c full_page_writes=off" \
            start >/dev/null || { cat "$pgroot/server.log" >&2; return 1; }
        PGPASSWORD=$password "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U dogcat dogcat
    fi
    export DOGCAT_TEST_POSTGRES="postgresql+psycopg://dogcat:$password@127.0.0.1:$port/dogcat"
    DOGCAT_TEST_CHROMIUM=$(command -v chromium)
    export DOGCAT_TEST_CHROMIUM
}

dogcat_services
