{#-
    The monthly snapshot marts (customer_rfm, customer_value, customer_portfolio, customer_features) are
    incremental tables keyed by (as_of_month, customer_id). A build replaces its own as_of_month exactly
    (a customer who dropped out of the month's population does not linger) and never touches another month.
    How a month is replaced depends on the engine:

    - default (DuckDB): append, after a pre-hook that deletes the month's rows. (delete+insert on the
      unique key would delete the month a second time, by a join of the new rows with every month's
      rows: nothing left to delete, but the join grows with the table's history);
    - Spark: a Parquet table partitioned by as_of_month; the pre-hook drops the month's partition and
      insert_overwrite writes it anew (dynamic partition overwrite replaces only the partitions written).

    Usage in a model: `config(materialized='incremental', ..., pre_hook="{{ delete_as_of_month_rows(build_month()) }}",
    **monthly_snapshot_storage())`.
-#}

{% macro monthly_snapshot_storage() -%}
    {{ return(adapter.dispatch('monthly_snapshot_storage', 'crm_warehouse')()) }}
{%- endmacro %}

{% macro default__monthly_snapshot_storage() -%}
    {{ return({'incremental_strategy': 'append'}) }}
{%- endmacro %}

{% macro spark__monthly_snapshot_storage() -%}
    {{ return({'incremental_strategy': 'insert_overwrite', 'file_format': 'parquet', 'partition_by': ['as_of_month']}) }}
{%- endmacro %}


{% macro delete_as_of_month_rows(as_of_month) -%}
    {#- Pre-hook of the monthly snapshot marts: on an incremental run, remove the month being rebuilt. -#}
    {{ adapter.dispatch('delete_as_of_month_rows', 'crm_warehouse')(as_of_month) }}
{%- endmacro %}

{% macro default__delete_as_of_month_rows(as_of_month) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where as_of_month = {{ as_of_month_date(as_of_month) }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__delete_as_of_month_rows(as_of_month) -%}
    {%- if is_incremental() -%}
        alter table {{ this }} drop if exists
        partition (as_of_month = '{{ parse_as_of_month(as_of_month).strftime("%Y-%m-%d") }}')
    {%- endif -%}
{%- endmacro %}
