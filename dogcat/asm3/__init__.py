"""Animal Shelter Manager 3: what dogcat reads from it and what it sends.

- ``records``: ASM3's animal export read (its columns, its dates in every locale's format);
- ``service``: ASM3's service API (HTTP, credentials, its errors);
- ``pull``: the breeds staff set in ASM3 taken into the catalog;
- ``plan``: what an export sends, and what staff must change in ASM3 by hand;
- ``sent``: the record of every file written, one export at a time;
- ``importfile``: the CSV ASM3's import reads (with the photos inside);
- ``send``: an export sent over the service API and settled to what ASM3 took.

Layer: ASM3 (docs/architecture.md).
"""
