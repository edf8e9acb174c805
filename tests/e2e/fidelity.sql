-- A feature-rich database for the fidelity round trips (tests/e2e/fidelity.rs): every kind of
-- object and setting a restore must bring back. `PW` is replaced by the test's password prefix.

-- Roles: groups, login roles with passwords, a quoted name, attributes, a comment, settings.
create role app_readers nologin;
create role app_writers nologin in role app_readers;
create role reporting login password 'PW-reporting' connection limit 5 valid until 'infinity';
create role alice login password 'PW-alice' in role app_writers;
create role bob login password 'PW-bob';
grant app_readers to bob with admin option;
create role "Ops Team" login password 'PW-ops' createdb in role app_writers;
create role mallory login password 'PW-mallory';
comment on role reporting is 'owns the reporting schema — ✓';
alter role alice set statement_timeout = '5s';
alter role alice set search_path = app, public;

-- The database itself: settings, grants, comment, per-database role settings.
alter database codexos_db set timezone = 'Asia/Kathmandu';
alter database codexos_db set default_text_search_config = 'pg_catalog.french';
revoke connect, temporary on database codexos_db from public;
grant connect on database codexos_db to app_readers, reporting;
comment on database codexos_db is 'CodexOS — main database 🐘';
alter role bob in database codexos_db set search_path = app, public;
alter role alice in database codexos_db set work_mem = '8MB';

-- Extensions (contrib).
create schema ext;
create extension pgcrypto schema ext;
create extension citext schema ext;
create extension hstore schema ext;
create extension pg_trgm schema ext;
create extension ltree schema ext;
create extension btree_gist schema ext;
create extension "uuid-ossp" schema ext;
grant usage on schema ext to public;

-- Schemas, one owned by a role other than the bootstrap user.
create schema app;
comment on schema app is 'the application';
create schema reporting authorization reporting;
create schema audit;
grant usage on schema app to app_readers, reporting;
grant usage on schema reporting to app_readers;

-- Default privileges (for the bootstrap user and for another role).
alter default privileges in schema app grant select on tables to app_readers;
alter default privileges for role reporting in schema reporting grant select on tables to app_readers;

-- Types: enum (a value added out of order), domain over an extension type, ICU collation.
create type app.mood as enum ('sad', 'ok', 'happy');
alter type app.mood add value 'meh' before 'ok';
create domain app.email as ext.citext check (value operator(ext.~) '^[^@ ]+@[^@ ]+$');
create collation app.de_phonebook (provider = icu, locale = 'de-u-co-phonebk');

-- A table with RLS, a trigger, column grants, an identity column at an odd start.
create table app.accounts (
  id bigint generated always as identity (start with 1000 increment by 7) primary key,
  owner_name name not null default current_user,
  email app.email not null,
  display_name text collate app.de_phonebook,
  mood app.mood,
  tags ext.hstore,
  path ext.ltree,
  uid uuid default ext.uuid_generate_v4(),
  visits int not null default 0,
  updated_at timestamptz
);
comment on table app.accounts is 'one row per account';
comment on column app.accounts.email is 'unique, case-insensitive';
create index accounts_name_trgm on app.accounts using gin (display_name ext.gin_trgm_ops);
alter table app.accounts enable row level security;
alter table app.accounts force row level security;
create policy own_rows on app.accounts using (owner_name = current_user);
create policy readers_see_all on app.accounts for select to app_readers using (true);
grant select (id, email, display_name) on app.accounts to bob;
grant update (display_name) on app.accounts to alice;
grant insert on app.accounts to app_writers;
create function app.touch() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;
create trigger accounts_touch before update on app.accounts
  for each row execute function app.touch();
insert into app.accounts (email, display_name, mood, tags, path, uid)
select 'user' || g || '@Example.com',
       (array['Müller', 'Mueller', 'Mahler', 'Ärger', 'Zoë', 'שלום', 'مرحبا', '🐘 elephant'])[1 + g % 8] || ' ' || g,
       (array['sad', 'meh', 'ok', 'happy'])[1 + g % 4]::app.mood,
       ext.hstore(array['k' || g % 5, 'n'], array[md5(g::text), null]),
       ('top.sub' || g % 10 || '.leaf' || g)::ext.ltree,
       ext.uuid_generate_v5(ext.uuid_ns_url(), 'https://example.com/' || g)
from generate_series(1, 5000) g;
update app.accounts set visits = id % 13 where id % 11 = 0;

-- SECURITY DEFINER function owned by a login role.
create function app.bump(account bigint) returns void
  language sql security definer set search_path = app, pg_temp
  as $$ update app.accounts set visits = visits + 1 where id = account $$;
alter function app.bump(bigint) owner to alice;
revoke execute on function app.bump(bigint) from public;
grant execute on function app.bump(bigint) to app_readers;

-- Awkward values: every byte, emoji, right-to-left text, infinities, NaN, µs and odd offsets.
create table app.awkward (
  id bigint generated by default as identity primary key,
  t text,
  b bytea,
  ts timestamptz,
  tz timetz,
  d date,
  f float8,
  r real,
  n numeric,
  iv interval,
  j jsonb,
  arr text[],
  rng tstzrange,
  m money,
  bits bit varying(20),
  ip inet
);
insert into app.awkward (t, b, ts, tz, d, f, r, n, iv, j, arr, rng, m, bits, ip)
select (array[
          E'tab\there, newline\nthere, backslash \\ and quote '' and "double"',
          E'\\.\nline after a copy terminator',
          '🐘🔥👩‍👩‍👧‍👦 emoji and ZWJ',
          'שלום עולם — مرحبا بالعالم (RTL)',
          'combining: é vs é, ﬁ ligature, Ⅻ',
          '',
          null,
          repeat('x', 3000) || g
        ])[1 + g % 8] || case when g % 8 = 6 then null else ' #' || g end,
       case g % 4 when 0 then (select decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex') from generate_series(0, 255) i)
                  when 1 then ''::bytea
                  when 2 then null
                  else ext.digest(g::text, 'sha256') end,
       (array['infinity', '-infinity', '2024-03-31 01:59:59.999999+05:45', '1999-12-31 23:59:59.000001-09:30',
              '0044-03-15 12:00:00+00 BC', '2038-01-19 03:14:07.123456+14'])[1 + g % 6]::timestamptz + (g || ' microseconds')::interval,
       (array['23:59:59.999999+14', '00:00:00.000001-12', '12:34:56.789012+05:45'])[1 + g % 3]::timetz,
       (array['infinity', '-infinity', '4713-01-01 BC', '5874897-12-31', '2000-02-29'])[1 + g % 5]::date,
       (array['NaN', 'Infinity', '-Infinity', '-0', '1e-308', '1.7976931348623157e308', '0.1'])[1 + g % 7]::float8 * case when g % 7 > 2 then 1 else 1 end,
       (array['NaN', 'Infinity', '-Infinity', '3.4028235e38', '1.4e-45'])[1 + g % 5]::real,
       (array['NaN', 'Infinity', '-Infinity', '0.000000000000000000000000000001', '-123456789012345678901234567890.123456789'])[1 + g % 5]::numeric,
       (array['1 year 2 mons 3 days 04:05:06.789', '-178000000 years', '00:00:00.000001'])[1 + g % 3]::interval,
       jsonb_build_object('g', g, 'nested', jsonb_build_array(1.5e300, 'ü', null, true), 'esc', E'\u0001\b\f')::jsonb,
       array['a', null, 'with,comma', E'with"quote', '{braces}', ''],
       tstzrange('2024-01-01 00:00:00.000001+00', 'infinity', '(]'),
       (g * 1.01)::numeric::money,
       (g % 1024)::bit(20)::bit varying(20),
       ('10.' || g % 256 || '.0.0/' || 8 + g % 24)::inet
from generate_series(1, 24000) g;

-- A text column with every character class: all bytes 1..127 and a spread of code points.
create table app.chars (cp int primary key, c text not null);
insert into app.chars
select cp, chr(cp) from generate_series(1, 1114111, 97) cp where cp not between 55296 and 57343;

-- Partitions (range, with a default) and a sequence at an arbitrary value.
create table app.events (
  id bigint not null,
  at timestamptz not null,
  kind text not null,
  payload jsonb
) partition by range (at);
create table app.events_2024 partition of app.events for values from ('2024-01-01') to ('2025-01-01');
create table app.events_2025 partition of app.events for values from ('2025-01-01') to ('2026-01-01');
create table app.events_other partition of app.events default;
create sequence app.event_ids start 500 increment 3;
select setval('app.event_ids', 987654, true);
create sequence app.never_used start 42;
insert into app.events
select nextval('app.event_ids'), timestamptz '2023-11-01' + (g || ' hours')::interval, (array['login', 'logout', 'error'])[1 + g % 3], jsonb_build_object('n', g)
from generate_series(1, 30000) g;
grant select on app.events to reporting;

-- Owned by another role: a table and a materialized view over the partitions.
set role reporting;
create table reporting.notes (id int primary key, body text);
insert into reporting.notes select g, 'note ' || g from generate_series(1, 100) g;
create materialized view reporting.daily_totals as
  select date_trunc('day', at, 'UTC') as day, kind, count(*) as n from app.events group by 1, 2;
create index on reporting.daily_totals (day);
reset role;

-- Large objects with owners and grants.
select lo_from_bytea(424242, (select decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex') from generate_series(0, 255) i));
select lo_from_bytea(424243, convert_to(repeat('large object ✓ ', 20000), 'UTF8'));
alter large object 424242 owner to alice;
grant select on large object 424242 to bob;
grant select, update on large object 424243 to app_writers;

-- An event trigger (last: it logs the DDL that follows it).
create table audit.ddl_log (id bigserial primary key, tag text not null, at timestamptz not null default now());
create function audit.log_ddl() returns event_trigger language plpgsql as $$
begin
  insert into audit.ddl_log (tag) select command_tag from pg_event_trigger_ddl_commands();
end $$;
create event trigger log_ddl on ddl_command_end execute function audit.log_ddl();
create table audit.after_trigger (id int);
