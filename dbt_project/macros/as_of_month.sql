{#-
    The as-of window of a build. The build month is the first day of a month ('YYYY-MM-DD'); the warehouse
    is built as of the END of that month. Models read it with `build_month()` and pass it in to the macros
    below. The dates are computed here, at compile time, and reach the SQL as plain date literals
    (`cast('2025-01-31' as date)`): readable compiled SQL that every engine understands.
-#}

{#-
    build_month(): the month being built ('YYYY-MM-01'), from the first of
    1. var `as_of_month`: `--vars '{as_of_month: "2025-01-01"}'`, or a unit test's `overrides: vars:`;
    2. the environment variable CRM_AS_OF_MONTH, which is how the loop passes it
       (orchestration/stages/warehouse/assets.py);
    neither: the build stops with an error saying how to give it.

    Why the loop does not pass a var: dbt keeps its parsed project from one run to the next (partial parsing)
    only while the `--vars` stay the same, so a new month each month made every monthly build parse the whole
    project again: about 6 s on the reference machine, 4 s of it saved when the parse is kept (dbt then
    compiles some macros on their first use instead). The month is therefore read only when a model
    runs (`execute`), never while dbt parses: the parsed project does not depend on it, and dbt records no
    environment variable that would make it parse again when the month changes (while parsing, this macro
    returns a placeholder month). For the same reason:
    - the project declares no default `as_of_month`: dbt renders `var()` while parsing too, and a default
      would always come before the environment variable;
    - the data tests' `where` configs, rendered by dbt while parsing, name the month by the token
      `__build_month__`, which `get_where_subquery` replaces when the test runs (macros/get_where_subquery.sql).
-#}
{% macro build_month() -%}
    {%- if not execute -%}
        {{ return('2000-01-01') }}
    {%- endif -%}
    {%- set month = var('as_of_month', none) -%}
    {%- if month is none -%}
        {%- set month = env_var('CRM_AS_OF_MONTH', '') -%}
    {%- endif -%}
    {%- set month = month | string | trim -%}
    {%- if month == '' -%}
        {{ exceptions.raise_compiler_error(
            "no month to build: set the environment variable CRM_AS_OF_MONTH=YYYY-MM-01 or pass "
            ~ "--vars '{as_of_month: YYYY-MM-01}', the first day of the month the warehouse is built as of"
        ) }}
    {%- endif -%}
    {%- do parse_as_of_month(month) -%}
    {{ return(month) }}
{%- endmacro %}


{% macro parse_as_of_month(as_of_month) -%}
    {#- The first day of the as-of month as a Python date; fails the compile on a bad value. -#}
    {%- set text = as_of_month | string | trim -%}
    {%- set parsed = none -%}
    {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-01$', text) -%}
        {%- set parsed = modules.datetime.datetime.strptime(text, '%Y-%m-%d').date() -%}
    {%- endif -%}
    {%- if parsed is none -%}
        {{ exceptions.raise_compiler_error(
            "the build month (var as_of_month, else $CRM_AS_OF_MONTH) must be the first day of a month as "
            ~ "'YYYY-MM-DD', got '" ~ text ~ "'"
        ) }}
    {%- endif -%}
    {{ return(parsed) }}
{%- endmacro %}


{% macro shift_months(first_day, months) -%}
    {#- The first day of the month `months` calendar months after `first_day` (a first of month). -#}
    {%- set index = first_day.year * 12 + first_day.month - 1 + months -%}
    {{ return(modules.datetime.date(index // 12, index % 12 + 1, 1)) }}
{%- endmacro %}


{% macro date_literal(value) -%}
    cast('{{ value.strftime("%Y-%m-%d") }}' as date)
{%- endmacro %}


{% macro as_of_month_date(as_of_month) -%}
    {#- The first day of the as-of month as a SQL date. -#}
    {{ date_literal(parse_as_of_month(as_of_month)) }}
{%- endmacro %}


{% macro as_of_month_end(as_of_month) -%}
    {#- The last day of the as-of month (month_end = as_of_month + 1 month - 1 day) as a SQL date. -#}
    {%- set next_month = shift_months(parse_as_of_month(as_of_month), 1) -%}
    {{ date_literal(next_month - modules.datetime.timedelta(days=1)) }}
{%- endmacro %}


{% macro trailing_months_start(as_of_month, months) -%}
    {#- First day of the window of `months` calendar months that ends at the as-of month end. -#}
    {{ date_literal(shift_months(parse_as_of_month(as_of_month), 1 - months)) }}
{%- endmacro %}
