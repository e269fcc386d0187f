{#-
    The as-of window of a build. `as_of_month` is the first day of a month ('YYYY-MM-DD'); the warehouse
    is built as of the END of that month. Models read `var('as_of_month')` themselves and pass it in,
    so that unit tests can override the var. The dates are computed here, at compile time, and reach
    the SQL as plain date literals (`cast('2025-01-31' as date)`): readable compiled SQL that every
    engine understands.
-#}

{% macro parse_as_of_month(as_of_month) -%}
    {#- The first day of the as-of month as a Python date; fails the compile on a bad value. -#}
    {%- set text = as_of_month | string | trim -%}
    {%- set parsed = none -%}
    {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-01$', text) -%}
        {%- set parsed = modules.datetime.datetime.strptime(text, '%Y-%m-%d').date() -%}
    {%- endif -%}
    {%- if parsed is none -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_month must be the first day of a month as 'YYYY-MM-DD', got '" ~ text ~ "'"
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
