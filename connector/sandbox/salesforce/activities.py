"""The Task sObject: the follow-up a job change creates for a contact's or lead's owner.

Fields follow Salesforce's Task object reference: WhoId is a polymorphic lookup to Contact or Lead
(relationship `Who`), WhatId one to Account and other business objects (only Account is emulated), and
Status and Priority are required picklists a create fills in when they are not sent.
"""

from __future__ import annotations

from connector.sandbox.salesforce.fields import (
    FieldSpec,
    SObjectSpec,
    lookup,
    picklist,
    system_fields,
    text,
    with_id_label,
)

TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
TASK_PRIORITIES = ("High", "Normal", "Low")

TASK = SObjectSpec(
    "Task",
    "Task",
    "Tasks",
    "00T",
    with_id_label(
        system_fields(
            (
                lookup("WhoId", "Name ID", "Contact", "Who", more_references=("Lead",), polymorphic=True),
                lookup("WhatId", "Related To ID", "Account", "What", polymorphic=True),
                # Subject is a combobox (free text with suggested values) of 255 characters.
                text("Subject", "Subject", 255, "combobox"),
                FieldSpec("ActivityDate", "Due Date Only", "date"),
                picklist(
                    "Status",
                    "Status",
                    TASK_STATUSES,
                    nillable=False,
                    defaulted_on_create=True,
                    default_value="Not Started",
                    restricted=True,
                ),
                picklist(
                    "Priority",
                    "Priority",
                    TASK_PRIORITIES,
                    nillable=False,
                    defaulted_on_create=True,
                    default_value="Normal",
                    restricted=True,
                ),
                text("Description", "Description", 32000, "textarea"),
            )
        ),
        "Activity ID",
    ),
    # Describe keeps Subject nillable, as the object reference has it, but orgs usually require it on the
    # layout; the emulator is the stricter of the two (REQUIRED_FIELD_MISSING) so a connector that forgets
    # the subject fails here rather than creating blank follow-ups in a real org.
    required=("Subject",),
)
