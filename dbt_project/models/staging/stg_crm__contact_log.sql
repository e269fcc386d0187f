-- Delivered campaign contacts up to the end of the as-of month (collected in or before it), with what the
-- channel reports of each message (opened, clicked, unsubscribed; NULL where it reports nothing).
{%- set as_of_month = build_month() %}

with

source as (

    select
        campaign_id,
        customer_id,
        offer_id,
        channel,
        contacted_at,
        {{ optional_source_column('crm', 'contact_log', 'opened', 'boolean') }},
        {{ optional_source_column('crm', 'contact_log', 'clicked', 'boolean') }},
        {{ optional_source_column('crm', 'contact_log', 'unsubscribed', 'boolean') }},
        _loaded_month

    from {{ source('crm', 'contact_log') }}

),

renamed as (

    select
        cast(campaign_id as {{ dbt.type_string() }}) as campaign_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(offer_id as {{ dbt.type_string() }}) as offer_id,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(contacted_at as date) as contacted_at,
        cast(opened as boolean) as opened,
        cast(clicked as boolean) as clicked,
        cast(unsubscribed as boolean) as unsubscribed,
        cast(_loaded_month as date) as loaded_month

    from source

),

final as (

    select
        campaign_id,
        customer_id,
        offer_id,
        channel,
        contacted_at,
        opened,
        clicked,
        unsubscribed

    from renamed

    where
        loaded_month <= {{ as_of_month_date(as_of_month) }}
        and contacted_at <= {{ as_of_month_end(as_of_month) }}

)

select * from final
